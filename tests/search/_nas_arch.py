"""Shared by ``test_nas_local`` and ``test_nas_predictor``: studies on the synthetic NAS table
driven one ask at a time, and the registry's checks of a study that uses a sampler."""

import statistics
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import optuna
from optuna.samplers import BaseSampler, RandomSampler

from search.algorithm import FieldError
from search.nas.synthetic import SyntheticNAS
from search.registry import study_algorithm
from search.spec import AlgorithmSpec, Objective, ParamSpec
from tests.search.conftest import digits_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)

Make = Callable[[SyntheticNAS, int], BaseSampler]


def key(params: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted(params.items()))


def proposals(make: Make, seed: int, n: int, nas: SyntheticNAS) -> list[dict[str, Any]]:
    """The architectures of ``n`` sequential trials (each told its table value)."""
    study = optuna.create_study(direction="maximize", sampler=make(nas, seed))
    out = []
    for _ in range(n):
        trial = study.ask(nas.space())
        out.append(trial.params)
        study.tell(trial, nas.value(trial.params))
    return out


def in_flight(make: Make, nas: SyntheticNAS, told: int, asked: int) -> list[dict[str, Any]]:
    """``told`` sequential trials, then ``asked`` more asked at once (none told: in flight)."""
    study = optuna.create_study(direction="maximize", sampler=make(nas, 0))
    out = []
    for _ in range(told):
        trial = study.ask(nas.space())
        out.append(trial.params)
        study.tell(trial, nas.value(trial.params))
    out += [study.ask(nas.space()).params for _ in range(asked)]
    return out


def mean_regret(make: Make, seeds: range, budget: int) -> float:
    regrets = []
    for seed in seeds:
        nas = SyntheticNAS(seed=seed)
        study = optuna.create_study(direction="maximize", sampler=make(nas, seed))
        study.optimize(nas.objective, n_trials=budget)
        regrets.append(nas.regret(study.best_value))
    return statistics.mean(regrets)


def random_mean_regret(seeds: range, budget: int) -> float:
    return mean_regret(lambda _nas, seed: RandomSampler(seed=seed), seeds, budget)


def check(
    name: str, space: tuple[ParamSpec, ...], n_objectives: int = 1, **given: Any
) -> list[FieldError]:
    """The registry's checks of a digits study with ``space`` and ``algorithm: name``."""
    objectives = tuple(Objective(f"m{i}", "maximize") for i in range(n_objectives))
    spec = replace(
        digits_spec("nas", 0, 4, 1, 1),
        algorithm=AlgorithmSpec(name, given),
        search_space=space,
        objectives=objectives,
    )
    return study_algorithm(name).check(spec, None)


ARCH_SPACE = (
    ParamSpec("model.block", "categorical", choices=("conv", "mlp")),
    ParamSpec("model.depth", "int", low=1, high=8),
)
