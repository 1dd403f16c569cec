"""Neural-architecture-search samplers, registered as the ``evolution`` and ``reinforce``
algorithms.

- :class:`RegularizedEvolutionSampler` (``evolution``): aging evolution, Real et al. 2019.
- :class:`ReinforceSampler` (``reinforce``): a REINFORCE controller with a moving-average
  baseline, Zoph & Le 2017, over independent decisions.

Both search architecture choices (categorical and integer parameters) on a single objective;
a study whose search space has a float parameter is refused at validation (floats would only
ever be sampled at random), and ``reinforce`` also refuses an integer with more than 256
values. :mod:`search.nas.synthetic` is a tabular objective with a known optimum to measure them
on (``benchmarks/nas_regret.py``).
"""

from collections.abc import Mapping
from typing import Any

from search.nas.evolution import RegularizedEvolutionSampler
from search.nas.reinforce import MAX_VALUES, ReinforceSampler
from search.registry import Algorithm, Setting, Space, register
from search.spec import ParamSpec

__all__ = ["RegularizedEvolutionSampler", "ReinforceSampler"]

_SEED = Setting("seed", int, None, "Random seed (default: the study's seed).", minimum=0)


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


def _evolution_problems(settings: Mapping[str, Any], space: Space, n_objectives: int) -> list[str]:
    problems = _float_problems("evolution", space)
    size, population = settings.get("sample_size"), settings.get("population_size")
    if isinstance(size, int) and isinstance(population, int) and size > population:
        problems.append(f"sample_size ({size}) must be <= population_size ({population})")
    return problems


def _reinforce_problems(settings: Mapping[str, Any], space: Space, n_objectives: int) -> list[str]:
    problems = _float_problems("reinforce", space)
    for p in space:
        if p.kind == "int" and _int_values(p) > MAX_VALUES:
            problems.append(
                f"reinforce learns a policy over at most {MAX_VALUES} values; {p.name} has "
                f"{_int_values(p):,}: give it a step, or make it categorical"
            )
    decay = settings.get("baseline_decay")
    if isinstance(decay, int | float) and decay >= 1:
        problems.append(f"baseline_decay must be < 1, got {decay}")
    rate = settings.get("learning_rate")
    if isinstance(rate, int | float) and rate <= 0:
        problems.append(f"learning_rate must be > 0, got {rate}")
    return problems


register(
    Algorithm(
        name="evolution",
        kind="sampler",
        description="Regularized (aging) evolution for architecture search: a tournament "
        "among the most recent trials picks a parent, whose copy has one categorical or "
        "integer choice mutated; single objective, no float parameters.",
        settings=(
            _SEED,
            Setting(
                "population_size",
                int,
                20,
                "Most recent finished trials that form the population (and random trials "
                "before evolution starts).",
                minimum=2,
            ),
            Setting(
                "sample_size",
                int,
                5,
                "Population members drawn per tournament (at most population_size).",
                minimum=1,
            ),
        ),
        factory=lambda space, seed, population_size, sample_size: RegularizedEvolutionSampler(
            population_size=population_size, sample_size=sample_size, seed=seed
        ),
        multi_objective=False,
        check=_evolution_problems,
    )
)

register(
    Algorithm(
        name="reinforce",
        kind="sampler",
        description="REINFORCE controller for architecture search: a softmax policy per "
        "categorical or integer choice, trained on the trials' ranks with a moving-average "
        "baseline; single objective, no float parameters.",
        settings=(
            _SEED,
            Setting("learning_rate", float, 0.3, "Policy-gradient step size.", minimum=0),
            Setting(
                "baseline_decay",
                float,
                0.9,
                "Weight of the old baseline in its moving average (below 1).",
                minimum=0,
            ),
            Setting(
                "n_startup_trials",
                int,
                0,
                "Random trials before the policy is used (learned from all the same).",
                minimum=0,
            ),
            Setting(
                "entropy_weight",
                float,
                0.0,
                "Entropy bonus that keeps the policy from collapsing early.",
                minimum=0,
            ),
        ),
        factory=lambda space, seed, **kw: ReinforceSampler(seed=seed, **kw),
        multi_objective=False,
        check=_reinforce_problems,
    )
)
