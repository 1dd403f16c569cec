"""The cell-search benchmark's strategies (an algorithm with settings each) and how a study's
incumbent is picked after its first n trials: its best observed cell, or the cell an ensemble
fitted to all n values rates best (as a noise-aware ``predictor`` study recommends)."""

import json
from collections.abc import Callable

from search.nas.predictor import recommend

Cell = dict[str, object]

# A strategy is an algorithm with settings: predictor_replicas evaluates the best-rated cell
# again every second trial (at most five times in all), for the noise of 2-epoch training, and
# recommends among the cells it evaluated more than once.
ALGORITHMS: dict[str, tuple[str, dict[str, object]]] = {
    "predictor_replicas": ("predictor", {"replicate_every": 2, "replicates": 4})
}
REPLICATING = {name for name, (_, settings) in ALGORITHMS.items() if "replicate_every" in settings}


def best_observed(values: list[float], cells: list[Cell], n: int, name: str = "") -> Cell:
    """The cell of the best of the first ``n`` trials (the earliest on ties)."""
    return cells[max(range(min(n, len(values))), key=values.__getitem__)]


def recommended(values: list[float], cells: list[Cell], n: int, name: str = "") -> Cell:
    """Of the cells of the first ``n`` trials, the one an ensemble fitted to all their values
    rates best (``search.nas.predictor.recommend``, as a noise-aware ``predictor`` study
    recommends; failed trials left out); for a replicating strategy ``name``, among the cells
    it evaluated more than once."""
    done = [i for i in range(min(n, len(values))) if values[i] > 0] or [0]
    names = sorted(cells[0])
    choices = [sorted({json.dumps(cells[i][p]) for i in done}) for p in names]
    arch = [
        tuple(c.index(json.dumps(cells[i][p])) for p, c in zip(names, choices, strict=True))
        for i in done
    ]
    samples = [(a, values[i]) for a, i in zip(arch, done, strict=True)]
    pick = recommend(samples, tuple(map(len, choices)), replicated=name in REPLICATING)
    return cells[done[arch.index(pick)]]


PICKS: dict[str, Callable[[list[float], list[Cell], int, str], Cell]] = {
    "best observed": best_observed,
    "recommended": recommended,
}
