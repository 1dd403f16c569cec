"""A search space in Optuna's terms: each parameter's distribution, suggested define-by-run."""

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from search.spec import ParamSpec


def to_distribution(param: ParamSpec) -> BaseDistribution:
    """Optuna's distribution for a parameter spec."""
    if param.kind == "categorical":
        return CategoricalDistribution(param.choices)
    assert param.low is not None and param.high is not None
    if param.kind == "int":
        return IntDistribution(
            int(param.low), int(param.high), log=param.log, step=int(param.step or 1)
        )
    return FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def suggest(trial: optuna.Trial, p: ParamSpec) -> None:
    """Ask the trial's sampler for ``p``'s value."""
    if p.kind == "categorical":
        trial.suggest_categorical(p.name, list(p.choices))
        return
    assert p.low is not None and p.high is not None
    if p.kind == "int":
        trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    else:
        trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)


def suggest_all(trial: optuna.Trial, space: tuple[ParamSpec, ...]) -> None:
    """Define-by-run: a parameter is sampled only when its conditions hold on the ones sampled
    before it, so inactive parameters never reach the sampler or the task."""
    for p in space:
        if all(c.holds(trial.params) for c in p.when):
            suggest(trial, p)
