"""The grid sampler: every combination of the parameters' values, in shuffled order."""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.samplers import GridSampler

from search.samplers.base import SamplerAlgorithm, Space, seed_setting
from search.spec import ParamSpec

GRID_LIMIT = 100_000


def _grid_values(p: ParamSpec) -> list[Any] | None:
    """The grid points of one parameter, or None when it has no finite grid."""
    if p.kind == "categorical":
        return list(p.choices)
    assert p.low is not None and p.high is not None
    if p.kind == "int":
        return list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
    if p.step is None:
        return None
    count = math.floor((p.high - p.low) / p.step + 1e-9) + 1
    return [float(v) for v in np.round(p.low + p.step * np.arange(count), 12)]


def grid_size(space: Space) -> int:
    return math.prod(len(_grid_values(p) or []) for p in space)


def _problems(settings: Any, space: Space, n_objectives: int) -> list[str]:
    if not space:
        return ["grid needs a search space"]
    floats = [p.name for p in space if _grid_values(p) is None]
    if floats:
        return [f"grid needs a step (or categorical choices) for {', '.join(floats)}"]
    size = grid_size(space)
    if size > GRID_LIMIT:
        return [f"the grid has {size:,} points; the limit is {GRID_LIMIT:,}"]
    return []


def _grid(space: Space, seed: int | None) -> GridSampler:
    return GridSampler({p.name: _grid_values(p) or [] for p in space}, seed=seed)


@dataclass(frozen=True)
class GridSettings:
    seed: int | None = seed_setting()


GRID = SamplerAlgorithm(
    name="grid",
    description="Every combination of the parameters' values, in shuffled order; the study "
    "ends when the grid is exhausted. Floats need a step.",
    settings=GridSettings,
    factory=_grid,
    problems=_problems,
    trial_cap=grid_size,
)
