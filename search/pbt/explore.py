"""Parameter values of a population: sampled, snapped onto their ranges, and perturbed.

:class:`Plan` is what every member needs to train (sent once to the workers); :class:`Explorer`
is PBT's explore step (and PB2's tidy-up), which Ray Tune calls with a clone's config.
"""

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna.distributions import FloatDistribution, IntDistribution

from search.space import to_distribution
from search.spec import ParamSpec, StudySpec

PERTURBATION_FACTORS = (0.8, 1.2)


def snap(p: ParamSpec, value: Any) -> Any:
    """``value`` moved into ``p``'s range and onto its step (Optuna accepts it as is)."""
    if p.kind == "categorical":
        return value
    dist = to_distribution(p)
    assert isinstance(dist, FloatDistribution | IntDistribution)
    v = min(max(float(value), dist.low), dist.high)
    if dist.step is not None:
        v = dist.low + round((v - dist.low) / dist.step) * dist.step
        v = min(max(v, dist.low), dist.high)
    if isinstance(dist, IntDistribution):
        return round(v)
    return v


def sample(p: ParamSpec, rng: random.Random) -> Any:
    if p.kind == "categorical":
        return rng.choice(p.choices)
    assert p.low is not None and p.high is not None
    if p.log:
        value = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
    else:
        value = rng.uniform(p.low, p.high)
    return snap(p, value)


@dataclass(frozen=True)
class Plan:
    """What every member needs to train, sent once to the workers."""

    spec: StudySpec
    method: str
    epochs: int
    interval: int
    mutable: tuple[str, ...]  # perturbed at explore; the others are inherited
    monitor: str
    cpus: float
    gpus: float

    def param(self, name: str) -> ParamSpec:
        return next(p for p in self.spec.search_space if p.name == name)

    def encoded(self, name: str) -> bool:
        """PB2 fits its GP on the raw config: a log-scaled parameter lives there as log10."""
        return self.method == "pb2" and self.param(name).log

    def encode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: math.log10(v) if self.encoded(k) else v for k, v in params.items()}

    def decode(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The parameter values of a Tune config."""
        out = {}
        for p in self.spec.search_space:
            value = config[p.name]
            out[p.name] = snap(p, 10**value if self.encoded(p.name) else value)
        return out


class Explorer:
    """PBT's explore step (and PB2's tidy-up): Ray hands it the clone's config."""

    def __init__(self, plan: Plan, resample_probability: float, seed: int) -> None:
        self.plan = plan
        self.resample_probability = resample_probability
        # Seeded: in synchronous mode the explore calls come in a fixed order, so the
        # perturbations repeat run after run.
        self.rng = random.Random(seed)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan
        if plan.method == "pb2":
            # PB2 chose new values; bring them onto the parameters' ranges and steps.
            return {**config, **plan.encode(plan.decode(config))}
        params = plan.decode(config)
        for name in plan.mutable:
            p = plan.param(name)
            if self.rng.random() < self.resample_probability:
                params[name] = sample(p, self.rng)
            elif p.kind != "categorical":
                params[name] = snap(p, params[name] * self.rng.choice(PERTURBATION_FACTORS))
        return {**config, **plan.encode(params)}
