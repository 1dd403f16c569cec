"""Optuna's samplers under tuneforge's algorithm names, with declared settings."""

from dataclasses import dataclass

from optuna.samplers import (
    CmaEsSampler,
    GPSampler,
    NSGAIIISampler,
    NSGAIISampler,
    QMCSampler,
    RandomSampler,
    TPESampler,
)

from models.fields import setting
from search.samplers.base import SamplerAlgorithm, seed_setting
from search.samplers.grid import GRID
from search.samplers.log_ndtr import use_scipy
from search.spec import MAX_TRIALS, MAX_VALUE

use_scipy()  # TPE's hot loop in C (search/samplers/log_ndtr.py)

_STARTUP = "Random trials before modelling."
# More start-up trials than a study's largest budget would only mean random search.
_MOST = MAX_TRIALS


@dataclass(frozen=True)
class RandomSettings:
    seed: int | None = seed_setting()


@dataclass(frozen=True)
class QMCSettings:
    seed: int | None = seed_setting()
    qmc_type: str = setting("sobol", "Sequence.", choices=("sobol", "halton"))
    scramble: bool = setting(True, "Randomize the sequence (with the seed).")


@dataclass(frozen=True)
class TPESettings:
    seed: int | None = seed_setting()
    n_startup_trials: int = setting(10, _STARTUP, low=0, high=_MOST)
    multivariate: bool = setting(True, "Model parameters jointly.")
    group: bool = setting(True, "Model each conditional sub-space on its own.")
    constant_liar: bool = setting(True, "Avoid proposing the same point to parallel trials.")


@dataclass(frozen=True)
class GPSettings:
    seed: int | None = seed_setting()
    n_startup_trials: int = setting(10, _STARTUP, low=0, high=_MOST)
    deterministic_objective: bool = setting(False, "Assume noise-free values.")


@dataclass(frozen=True)
class CmaEsSettings:
    seed: int | None = seed_setting()
    n_startup_trials: int = setting(1, "Random trials before CMA-ES.", low=0, high=_MOST)
    sigma0: float | None = setting(
        None, "Initial step size (default: 1/6 of the range).", low=0, high=MAX_VALUE
    )
    popsize: int | None = setting(
        None, "Population size (default: CMA-ES's own).", low=2, high=MAX_TRIALS
    )
    restart_strategy: str | None = setting(
        None, "Restart with a larger population.", choices=("ipop", "bipop")
    )
    use_separable_cma: bool = setting(False, "Diagonal covariance (faster, many params).")
    with_margin: bool = setting(False, "CMA-ES with margin, for integer parameters.")
    lr_adapt: bool = setting(False, "Learning-rate adaptation for noisy objectives.")


@dataclass(frozen=True)
class GeneticSettings:
    seed: int | None = seed_setting()
    population_size: int = setting(50, "Individuals per generation.", low=2, high=MAX_TRIALS)
    crossover_prob: float = setting(0.9, "Probability of crossover.", low=0, high=1)
    swapping_prob: float = setting(0.5, "Probability of swapping each parameter.", low=0, high=1)


_SAMPLERS = (
    GRID,
    SamplerAlgorithm(
        name="random",
        description="Independent uniform sampling of every parameter.",
        settings=RandomSettings,
        factory=lambda space, seed: RandomSampler(seed=seed),
    ),
    SamplerAlgorithm(
        name="qmc",
        description="Quasi-Monte Carlo: a low-discrepancy (Sobol or Halton) sequence that "
        "covers the space more evenly than random sampling.",
        settings=QMCSettings,
        factory=lambda space, seed, qmc_type, scramble: QMCSampler(
            qmc_type=qmc_type, scramble=scramble, seed=seed, warn_independent_sampling=False
        ),
    ),
    SamplerAlgorithm(
        name="tpe",
        description="Tree-structured Parzen Estimator (Bayesian optimization); multivariate "
        "and grouped, so conditional parameters are modelled together with their parents.",
        settings=TPESettings,
        factory=lambda space, seed, n_startup_trials, multivariate, group, constant_liar: (
            TPESampler(
                seed=seed,
                n_startup_trials=n_startup_trials,
                multivariate=multivariate,
                group=group and multivariate,
                constant_liar=constant_liar,
            )
        ),
    ),
    SamplerAlgorithm(
        name="gp",
        description="Gaussian-process Bayesian optimization (log expected improvement).",
        settings=GPSettings,
        factory=lambda space, seed, n_startup_trials, deterministic_objective: GPSampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            deterministic_objective=deterministic_objective,
            warn_independent_sampling=False,
        ),
    ),
    SamplerAlgorithm(
        name="cmaes",
        description="CMA-ES evolution strategy for continuous and integer parameters "
        "(categoricals are sampled independently); single objective only.",
        settings=CmaEsSettings,
        multi_objective=False,
        factory=lambda space, seed, **kw: CmaEsSampler(
            seed=seed, warn_independent_sampling=False, **kw
        ),
    ),
    SamplerAlgorithm(
        name="nsga2",
        description="NSGA-II genetic algorithm; the usual choice for several objectives.",
        settings=GeneticSettings,
        factory=lambda space, **kw: NSGAIISampler(**kw),
    ),
    SamplerAlgorithm(
        name="nsga3",
        description="NSGA-III: reference-point selection, for three or more objectives.",
        settings=GeneticSettings,
        factory=lambda space, **kw: NSGAIIISampler(**kw),
    ),
)

ALGORITHMS: dict[str, SamplerAlgorithm] = {a.name: a for a in _SAMPLERS}
