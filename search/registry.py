"""Search algorithms by name: each a lazy factory plus the settings it accepts.

An algorithm plugs in at one of three points: as an Optuna sampler (``kind="sampler"``: what to
try next), as an Optuna pruner (``kind="pruner"``: which running trial to stop early), or as a
population method (``kind="population"``: PBT and PB2, which train a population on Ray Tune
and mirror it into Optuna instead of asking a sampler; :mod:`search.pbt`), or as a one-shot
search (``kind="oneshot"``: DARTS, one trial that searches and trains; :mod:`search.darts`).
A study's ``algorithm`` names a sampler, a population method or a one-shot search; its
``pruner`` names a pruner.
Registering one is a call to :func:`register`; ``GET /api/v1/algorithms`` and the tests read
:func:`list_algorithms`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

from search.spec import ParamSpec

Kind = Literal["sampler", "pruner", "population", "oneshot"]
# What a study's algorithm may name.
STUDY_KINDS: tuple[Kind, ...] = ("sampler", "population", "oneshot")
Space = tuple[ParamSpec, ...]


class SettingError(ValueError):
    """A bad algorithm setting; ``setting`` names it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class Setting:
    """One tunable of an algorithm, with its type and default."""

    name: str
    type: type
    default: Any
    description: str
    minimum: float | None = None
    choices: tuple[Any, ...] | None = None


def _no_problems(settings: Mapping[str, Any], space: Space, n_objectives: int) -> list[str]:
    return []


@dataclass(frozen=True)
class Algorithm:
    """A registered algorithm.

    ``factory(space=..., **settings)`` builds it; ``check(settings, space, n_objectives)``
    returns why a study cannot use it (a grid too large, several objectives for a
    single-objective sampler); ``trial_cap(space)`` bounds the trials it can propose.
    """

    name: str
    kind: Kind
    description: str
    settings: tuple[Setting, ...]
    factory: Callable[..., Any]
    multi_objective: bool = True
    check: Callable[[Mapping[str, Any], Space, int], list[str]] = _no_problems
    trial_cap: Callable[[Space], int | None] = lambda _space: None

    def problems(self, settings: Mapping[str, Any], space: Space, n_objectives: int) -> list[str]:
        """Why a study with ``space`` and ``n_objectives`` cannot use this algorithm."""
        if n_objectives > 1 and not self.multi_objective:
            return [f"{self.name} optimizes a single objective; this study has {n_objectives}"]
        return self.check(settings, space, n_objectives)

    def check_settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults and check names and types.

        Raises:
            SettingError: an unknown setting (naming the valid ones) or a value of the wrong type.
        """
        known = {s.name: s for s in self.settings}
        for key in given:
            if key not in known:
                valid = ", ".join(known) or "none"
                raise SettingError(
                    key, f"unknown setting {key!r} for {self.name!r}; valid: {valid}"
                )
        out: dict[str, Any] = {}
        for s in self.settings:
            value = given.get(s.name, s.default)
            if value is not None and not _is_type(value, s.type):
                raise SettingError(
                    s.name, f"setting {s.name!r} must be {s.type.__name__}, got {value!r}"
                )
            if value is not None and s.minimum is not None and value < s.minimum:
                raise SettingError(s.name, f"setting {s.name!r} must be >= {s.minimum:g}")
            if value is not None and s.choices is not None and value not in s.choices:
                valid = ", ".join(map(str, s.choices))
                raise SettingError(s.name, f"setting {s.name!r} must be one of {valid}")
            out[s.name] = value
        return out


def _is_type(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


_REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> None:
    """Add an algorithm; names are unique."""
    if algorithm.name in _REGISTRY:
        raise ValueError(f"algorithm {algorithm.name!r} is already registered")
    _REGISTRY[algorithm.name] = algorithm


def _load_builtins() -> None:
    # Importing the packages registers their algorithms; deferred so this module stays cheap.
    import search.darts
    import search.nas
    import search.pbt
    import search.pruners
    import search.samplers  # noqa: F401


def list_algorithms(kind: Kind | None = None) -> list[Algorithm]:
    """Every registered algorithm (of ``kind``), sorted by name."""
    _load_builtins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY) if kind in (None, _REGISTRY[k].kind)]


def get_algorithm(name: str, kind: Kind | tuple[Kind, ...] = "sampler") -> Algorithm:
    """The algorithm of ``kind`` (or of one of several kinds) registered as ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid names of that kind.
    """
    _load_builtins()
    kinds = (kind,) if isinstance(kind, str) else kind
    found = _REGISTRY.get(name)
    if found is None or found.kind not in kinds:
        valid = ", ".join(a.name for k in kinds for a in list_algorithms(k))
        hint = f" ({name!r} is a {found.kind})" if found else ""
        label = "algorithm" if len(kinds) > 1 else kinds[0]
        raise ValueError(f"unknown {label} {name!r}{hint}; valid: {valid}")
    return found


def create_sampler(
    name: str, settings: Mapping[str, Any], space: Space, study_seed: int, n_existing: int = 0
) -> BaseSampler:
    """Build the sampler for ``name`` with checked settings.

    Args:
        name: a registered sampler.
        settings: its settings as given in the spec.
        space: the study's search space (grid builds its grid from it).
        study_seed: the study's seed, used when the settings give none, so one seed fixes
            both the proposals and every trial's training.
        n_existing: trials the study already has. A resumed study offsets the seed by it, so
            the new sampler does not replay the proposals its predecessor already made.
    """
    algorithm = get_algorithm(name, "sampler")
    checked = algorithm.check_settings(settings)
    if "seed" in checked:
        checked["seed"] = (study_seed if checked["seed"] is None else checked["seed"]) + n_existing
    sampler: BaseSampler = algorithm.factory(space=space, **checked)
    return sampler


def create_pruner(name: str | None, settings: Mapping[str, Any]) -> BasePruner:
    """Build the pruner for ``name`` (no early stopping when ``name`` is None)."""
    if name is None:
        from optuna.pruners import NopPruner

        return NopPruner()
    algorithm = get_algorithm(name, "pruner")
    pruner: BasePruner = algorithm.factory(space=(), **algorithm.check_settings(settings))
    return pruner
