"""Optuna's samplers registered under tuneforge's algorithm names, with declared settings."""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.samplers import (
    CmaEsSampler,
    GPSampler,
    GridSampler,
    NSGAIIISampler,
    NSGAIISampler,
    QMCSampler,
    RandomSampler,
    TPESampler,
)

from search.registry import Algorithm, Setting, Space, register
from search.spec import ParamSpec

GRID_LIMIT = 100_000

_SEED = Setting("seed", int, None, "Random seed (default: the study's seed).", minimum=0)


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


def _grid_problems(settings: Mapping[str, Any], space: Space, n_objectives: int) -> list[str]:
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


register(
    Algorithm(
        name="grid",
        kind="sampler",
        description="Every combination of the parameters' values, in shuffled order; the study "
        "ends when the grid is exhausted. Floats need a step.",
        settings=(_SEED,),
        factory=_grid,
        check=_grid_problems,
        trial_cap=grid_size,
    )
)

register(
    Algorithm(
        name="random",
        kind="sampler",
        description="Independent uniform sampling of every parameter.",
        settings=(_SEED,),
        factory=lambda space, seed: RandomSampler(seed=seed),
    )
)

register(
    Algorithm(
        name="qmc",
        kind="sampler",
        description="Quasi-Monte Carlo: a low-discrepancy (Sobol or Halton) sequence that "
        "covers the space more evenly than random sampling.",
        settings=(
            _SEED,
            Setting("qmc_type", str, "sobol", "Sequence.", choices=("sobol", "halton")),
            Setting("scramble", bool, True, "Randomize the sequence (with the seed)."),
        ),
        factory=lambda space, seed, qmc_type, scramble: QMCSampler(
            qmc_type=qmc_type, scramble=scramble, seed=seed, warn_independent_sampling=False
        ),
    )
)

register(
    Algorithm(
        name="tpe",
        kind="sampler",
        description="Tree-structured Parzen Estimator (Bayesian optimization); multivariate "
        "and grouped, so conditional parameters are modelled together with their parents.",
        settings=(
            _SEED,
            Setting("n_startup_trials", int, 10, "Random trials before modelling.", minimum=0),
            Setting("multivariate", bool, True, "Model parameters jointly."),
            Setting("group", bool, True, "Model each conditional sub-space on its own."),
            Setting(
                "constant_liar", bool, True, "Avoid proposing the same point to parallel trials."
            ),
        ),
        factory=lambda space, seed, n_startup_trials, multivariate, group, constant_liar: (
            TPESampler(
                seed=seed,
                n_startup_trials=n_startup_trials,
                multivariate=multivariate,
                group=group and multivariate,
                constant_liar=constant_liar,
            )
        ),
    )
)

register(
    Algorithm(
        name="gp",
        kind="sampler",
        description="Gaussian-process Bayesian optimization (log expected improvement).",
        settings=(
            _SEED,
            Setting("n_startup_trials", int, 10, "Random trials before modelling.", minimum=0),
            Setting("deterministic_objective", bool, False, "Assume noise-free values."),
        ),
        factory=lambda space, seed, n_startup_trials, deterministic_objective: GPSampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            deterministic_objective=deterministic_objective,
            warn_independent_sampling=False,
        ),
    )
)

register(
    Algorithm(
        name="cmaes",
        kind="sampler",
        description="CMA-ES evolution strategy for continuous and integer parameters "
        "(categoricals are sampled independently); single objective only.",
        settings=(
            _SEED,
            Setting("n_startup_trials", int, 1, "Random trials before CMA-ES.", minimum=0),
            Setting("sigma0", float, None, "Initial step size (default: 1/6 of the range)."),
            Setting("popsize", int, None, "Population size (default: CMA-ES's own).", minimum=2),
            Setting(
                "restart_strategy",
                str,
                None,
                "Restart with a larger population.",
                choices=("ipop", "bipop"),
            ),
            Setting("use_separable_cma", bool, False, "Diagonal covariance (faster, many params)."),
            Setting("with_margin", bool, False, "CMA-ES with margin, for integer parameters."),
            Setting("lr_adapt", bool, False, "Learning-rate adaptation for noisy objectives."),
        ),
        multi_objective=False,
        factory=lambda space, seed, **kw: CmaEsSampler(
            seed=seed, warn_independent_sampling=False, **kw
        ),
    )
)

_GENETIC = (
    _SEED,
    Setting("population_size", int, 50, "Individuals per generation.", minimum=2),
    Setting("crossover_prob", float, 0.9, "Probability of crossover.", minimum=0),
    Setting("swapping_prob", float, 0.5, "Probability of swapping each parameter.", minimum=0),
)

register(
    Algorithm(
        name="nsga2",
        kind="sampler",
        description="NSGA-II genetic algorithm; the usual choice for several objectives.",
        settings=_GENETIC,
        factory=lambda space, **kw: NSGAIISampler(**kw),
    )
)

register(
    Algorithm(
        name="nsga3",
        kind="sampler",
        description="NSGA-III: reference-point selection, for three or more objectives.",
        settings=_GENETIC,
        factory=lambda space, **kw: NSGAIIISampler(**kw),
    )
)
