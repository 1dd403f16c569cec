"""Shared by the ``test_nas_samplers*`` modules: the two NAS samplers by name, the operations
of a categorical choice, and small helpers on in-memory Optuna studies."""

from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import create_trial

from search.nas import RegularizedEvolutionSampler, ReinforceSampler
from search.nas.synthetic import SyntheticNAS

optuna.logging.set_verbosity(optuna.logging.WARNING)

OPS = tuple(f"op{k}" for k in range(5))
SAMPLERS: dict[str, Callable[[int], BaseSampler]] = {
    "evolution": lambda seed: RegularizedEvolutionSampler(seed=seed),
    "reinforce": lambda seed: ReinforceSampler(seed=seed),
}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k, object()) != b.get(k, object())}


def _complete(params: dict[str, Any], value: float, **dists: BaseDistribution) -> Any:
    return create_trial(params=params, distributions=dists, value=value)


def _proposals(make: Callable[[int], BaseSampler], seed: int, n: int = 40) -> list[dict[str, Any]]:
    nas = SyntheticNAS(seed=7)
    study = optuna.create_study(direction="maximize", sampler=make(seed))
    out = []
    for _ in range(n):
        trial = study.ask(nas.space())
        out.append(trial.params)
        study.tell(trial, nas.value(trial.params))
    return out
