"""Search algorithms by name: each a lazy factory plus the settings it accepts.

An algorithm plugs in as an Optuna sampler (``kind="sampler"``). Registering one is a call to
:func:`register`; ``GET /api/v1/algorithms`` and the tests read :func:`list_algorithms`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from optuna.samplers import BaseSampler


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


@dataclass(frozen=True)
class Algorithm:
    name: str
    kind: Literal["sampler"]
    description: str
    settings: tuple[Setting, ...]
    factory: Callable[..., BaseSampler]

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
    # Importing the package registers its samplers; deferred so importing this module is cheap.
    import search.samplers  # noqa: F401


def list_algorithms() -> list[Algorithm]:
    """Every registered algorithm, sorted by name."""
    _load_builtins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_algorithm(name: str) -> Algorithm:
    """The algorithm registered as ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown algorithm {name!r}; valid: {', '.join(sorted(_REGISTRY))}"
        ) from None


def create_sampler(name: str, settings: Mapping[str, Any], n_existing: int = 0) -> BaseSampler:
    """Build the sampler for ``name`` with checked settings.

    Args:
        name: a registered algorithm.
        settings: its settings as given in the spec.
        n_existing: trials the study already has. A resumed study offsets a fixed seed by it,
            so the new sampler does not replay the proposals its predecessor already made.
    """
    algorithm = get_algorithm(name)
    checked = algorithm.check_settings(settings)
    if checked.get("seed") is not None:
        checked["seed"] += n_existing
    return algorithm.factory(**checked)
