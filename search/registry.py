"""Algorithms by name: a name → module table, each module imported on first use.

As in Ray Tune's search registry, naming an algorithm costs nothing until it is used: checking
that a name exists reads this table; the module (and whatever it imports: torch, Ray Tune) is
imported when the algorithm itself is asked for. Each module listed here has an
``ALGORITHMS`` mapping of its names to :class:`search.algorithm.Algorithm` objects. Adding an
algorithm is a module with its ``ALGORITHMS`` entry and a line in :data:`_TABLE`.
"""

import importlib
from collections.abc import Iterable

from search.algorithm import (
    STUDY_KINDS,
    Algorithm,
    AlgorithmKind,
    PrunerAlgorithm,
    StudyAlgorithm,
)

_SAMPLERS = ("grid", "random", "qmc", "tpe", "gp", "cmaes", "nsga2", "nsga3")
_PRUNERS = ("asha", "hyperband", "median", "percentile", "patient", "threshold", "curve")
_PRUNERS_MO = ("mo_asha", "mo_median")  # several objectives (search.pruners_mo)

# name → (kind, module that defines it)
_TABLE: dict[str, tuple[AlgorithmKind, str]] = {
    **{name: ("sampler", "search.samplers") for name in _SAMPLERS},
    "bohb": ("sampler", "search.samplers.bohb"),
    "evolution": ("sampler", "search.nas"),
    "reinforce": ("sampler", "search.nas"),
    "local_search": ("sampler", "search.nas"),
    "predictor": ("sampler", "search.nas"),
    "pbt": ("population", "search.pbt"),
    "pb2": ("population", "search.pbt"),
    "darts": ("oneshot", "search.darts"),
    **{name: ("pruner", "search.pruners") for name in _PRUNERS + _PRUNERS_MO},
}


def algorithm_kind(name: str) -> AlgorithmKind:
    """The kind of the registered algorithm ``name`` (nothing is imported).

    Raises:
        KeyError: no algorithm has that name.
    """
    return _TABLE[name][0]


def _kinds(kinds: AlgorithmKind | Iterable[AlgorithmKind]) -> tuple[AlgorithmKind, ...]:
    return (kinds,) if isinstance(kinds, str) else tuple(kinds)


def names(kinds: AlgorithmKind | Iterable[AlgorithmKind] = STUDY_KINDS) -> list[str]:
    """The registered names of ``kinds``, sorted (nothing is imported)."""
    wanted = _kinds(kinds)
    return sorted(n for n, (kind, _) in _TABLE.items() if kind in wanted)


def check_name(name: str, kinds: AlgorithmKind | Iterable[AlgorithmKind] = STUDY_KINDS) -> str:
    """``name`` if it is an algorithm of ``kinds`` (nothing is imported).

    Raises:
        ValueError: unknown name; the message lists the valid names of those kinds, and says
            what ``name`` is when it is of another kind.
    """
    wanted = _kinds(kinds)
    found = _TABLE.get(name)
    if found is None or found[0] not in wanted:
        hint = f" ({name!r} is a {found[0]})" if found else ""
        label = "algorithm" if len(wanted) > 1 else wanted[0]
        raise ValueError(f"unknown {label} {name!r}{hint}; valid: {', '.join(names(wanted))}")
    return name


def get_algorithm(
    name: str, kinds: AlgorithmKind | Iterable[AlgorithmKind] = STUDY_KINDS
) -> Algorithm:
    """The algorithm ``name`` of one of ``kinds``, its module imported on first use.

    Raises:
        ValueError: unknown name (see :func:`check_name`).
    """
    check_name(name, kinds)
    module = importlib.import_module(_TABLE[name][1])
    algorithm: Algorithm = module.ALGORITHMS[name]
    return algorithm


def study_algorithm(name: str) -> StudyAlgorithm:
    """The algorithm a study's ``algorithm`` names (a sampler, population or one-shot)."""
    algorithm = get_algorithm(name, STUDY_KINDS)
    assert isinstance(algorithm, StudyAlgorithm)
    return algorithm


def pruner(name: str) -> PrunerAlgorithm:
    """The early-stopping rule a study's ``pruner`` names."""
    algorithm = get_algorithm(name, "pruner")
    assert isinstance(algorithm, PrunerAlgorithm)
    return algorithm


def list_algorithms(kind: AlgorithmKind | None = None) -> list[Algorithm]:
    """Every registered algorithm (of ``kind``), sorted by name; imports their modules."""
    kinds: tuple[AlgorithmKind, ...] = (
        ("sampler", "pruner", "population", "oneshot") if kind is None else (kind,)
    )
    return [get_algorithm(n, kinds) for n in names(kinds)]
