"""Neural-architecture-search samplers, registered as the ``evolution`` and ``reinforce``
algorithms.

- :class:`RegularizedEvolutionSampler` (``evolution``): aging evolution, Real et al. 2019.
- :class:`ReinforceSampler` (``reinforce``): a REINFORCE controller with a moving-average
  baseline, Zoph & Le 2017, over independent decisions.
- :class:`LocalSearchSampler` (``local_search``): local search over one-edit neighbourhoods
  with random restarts (:mod:`search.nas.local_search`).
- :class:`PredictorSampler` (``predictor``): predictor-guided evolution, an ensemble of small
  MLPs picking mutations of the best architectures (:mod:`search.nas.predictor`).

Both search architecture choices (categorical and integer parameters) on a single objective;
a study whose search space has a float parameter is refused at validation (floats would only
ever be sampled at random), and ``reinforce`` also refuses an integer with more than 256
values. :mod:`search.nas.synthetic` is a tabular objective with a known optimum to measure them
on (``benchmarks/nas_regret.py``).
"""

from dataclasses import dataclass
from typing import Any

from models.fields import setting
from search.nas.evolution import RegularizedEvolutionSampler
from search.nas.local_search import ALGORITHM as LOCAL_SEARCH
from search.nas.local_search import LocalSearchSampler
from search.nas.predictor import ALGORITHM as PREDICTOR
from search.nas.predictor import PredictorSampler
from search.nas.reinforce import MAX_VALUES, ReinforceSampler
from search.samplers.base import SamplerAlgorithm, Space, seed_setting
from search.spec import MAX_TRIALS, MAX_VALUE, ParamSpec

__all__ = [
    "ALGORITHMS",
    "LocalSearchSampler",
    "PredictorSampler",
    "RegularizedEvolutionSampler",
    "ReinforceSampler",
]


def _float_problems(name: str, space: Space) -> list[str]:
    verb = {"evolution": "mutates", "reinforce": "learns"}[name]
    return [
        f"{name} {verb} categorical and integer parameters; {p.name} is a float: "
        f"use tpe, or make it categorical"
        for p in space
        if p.kind == "float"
    ]


def _int_values(p: ParamSpec) -> int:
    assert p.low is not None and p.high is not None
    step = 1 if p.log else int(p.step or 1)
    return int(p.high - p.low) // step + 1


@dataclass(frozen=True)
class EvolutionSettings:
    seed: int | None = seed_setting()
    population_size: int = setting(
        20,
        "Most recent finished trials that form the population (and random trials before "
        "evolution starts).",
        low=2,
        high=MAX_TRIALS,
    )
    sample_size: int = setting(
        5,
        "Population members drawn per tournament (at most population_size).",
        low=1,
        high=MAX_TRIALS,
    )


def _evolution_problems(settings: Any, space: Space, n_objectives: int) -> list[str]:
    problems = _float_problems("evolution", space)
    size, population = settings.sample_size, settings.population_size
    if size > population:
        problems.append(f"sample_size ({size}) must be <= population_size ({population})")
    return problems


@dataclass(frozen=True)
class ReinforceSettings:
    seed: int | None = seed_setting()
    learning_rate: float = setting(0.3, "Policy-gradient step size.", low=0, high=MAX_VALUE)
    baseline_decay: float = setting(
        0.9, "Weight of the old baseline in its moving average (below 1).", low=0, high=1
    )
    n_startup_trials: int = setting(
        0,
        "Random trials before the policy is used (learned from all the same).",
        low=0,
        high=MAX_TRIALS,
    )
    entropy_weight: float = setting(
        0.0, "Entropy bonus that keeps the policy from collapsing early.", low=0, high=MAX_VALUE
    )


def _reinforce_problems(settings: Any, space: Space, n_objectives: int) -> list[str]:
    problems = _float_problems("reinforce", space)
    for p in space:
        if p.kind == "int" and _int_values(p) > MAX_VALUES:
            problems.append(
                f"reinforce learns a policy over at most {MAX_VALUES} values; {p.name} has "
                f"{_int_values(p):,}: give it a step, or make it categorical"
            )
    if settings.baseline_decay >= 1:
        problems.append(f"baseline_decay must be < 1, got {settings.baseline_decay}")
    if settings.learning_rate <= 0:
        problems.append(f"learning_rate must be > 0, got {settings.learning_rate}")
    return problems


EVOLUTION = SamplerAlgorithm(
    name="evolution",
    description="Regularized (aging) evolution for architecture search: a tournament "
    "among the most recent trials picks a parent, whose copy has one categorical or "
    "integer choice mutated; single objective, no float parameters.",
    settings=EvolutionSettings,
    factory=lambda space, seed, population_size, sample_size: RegularizedEvolutionSampler(
        population_size=population_size, sample_size=sample_size, seed=seed
    ),
    multi_objective=False,
    problems=_evolution_problems,
)

REINFORCE = SamplerAlgorithm(
    name="reinforce",
    description="REINFORCE controller for architecture search: a softmax policy per "
    "categorical or integer choice, trained on the trials' ranks with a moving-average "
    "baseline; single objective, no float parameters.",
    settings=ReinforceSettings,
    factory=lambda space, seed, **kw: ReinforceSampler(seed=seed, **kw),
    multi_objective=False,
    problems=_reinforce_problems,
)

ALGORITHMS: dict[str, SamplerAlgorithm] = {
    a.name: a for a in (EVOLUTION, REINFORCE, LOCAL_SEARCH, PREDICTOR)
}
