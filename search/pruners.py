"""Optuna's pruners under tuneforge's names: early stopping of unpromising trials.

A pruner reads every trial's per-epoch objective (its intermediate values) and decides which
running trial to stop; the loop then cancels its Ray task at once, freeing its resources, and
records the trial as PRUNED with the epoch it stopped at. Resources are counted in epochs.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    PatientPruner,
    PercentilePruner,
    SuccessiveHalvingPruner,
    ThresholdPruner,
)

from models.data import DatasetInfo
from models.fields import as_dict, setting
from models.metrics import METRICS
from search.algorithm import FieldError, PrunerAlgorithm, at
from search.pruners_asha import AshaPruner
from search.pruners_curve import CurvePruner, CurveSettings
from search.pruners_mo import (
    MoAshaPruner,
    MoAshaSettings,
    MoMedianPruner,
    MoMedianSettings,
    objective_problems,
)
from search.spec import MAX_EPOCHS, MAX_TRIALS, MAX_VALUE, StudySpec

_STARTUP = "Trials that finish before pruning starts."
_WARMUP = "Epochs of every trial that are never pruned."
_INTERVAL = "Epochs between pruning checks."
_FIRST_RUNG = "Epochs before the first rung."
_KEEP = "Keep 1 in this many at each rung."


@dataclass(frozen=True)
class AshaSettings:
    min_resource: int = setting(1, _FIRST_RUNG, low=1, high=MAX_EPOCHS)
    reduction_factor: int = setting(3, _KEEP, low=2, high=100)
    min_early_stopping_rate: int = setting(0, "Skip this many rungs.", low=0, high=100)


@dataclass(frozen=True)
class HyperbandSettings:
    min_resource: int = setting(1, _FIRST_RUNG, low=1, high=MAX_EPOCHS)
    max_resource: int | None = setting(
        None, "Epochs of a full trial (default: learned).", low=1, high=MAX_EPOCHS
    )
    reduction_factor: int = setting(3, _KEEP, low=2, high=100)


@dataclass(frozen=True)
class MedianSettings:
    n_startup_trials: int = setting(5, _STARTUP, low=0, high=MAX_TRIALS)
    n_warmup_steps: int = setting(0, _WARMUP, low=0, high=MAX_EPOCHS)
    interval_steps: int = setting(1, _INTERVAL, low=1, high=MAX_EPOCHS)


@dataclass(frozen=True)
class PercentileSettings:
    percentile: float = setting(25.0, "Keep trials in the best this-many percent.", low=0, high=100)
    n_startup_trials: int = setting(5, _STARTUP, low=0, high=MAX_TRIALS)
    n_warmup_steps: int = setting(0, _WARMUP, low=0, high=MAX_EPOCHS)
    interval_steps: int = setting(1, _INTERVAL, low=1, high=MAX_EPOCHS)


_WRAPPABLE = ("none", "asha", "hyperband", "median", "percentile", "threshold")


@dataclass(frozen=True)
class PatientSettings:
    patience: int = setting(3, "Epochs without improvement to tolerate.", low=0, high=MAX_EPOCHS)
    min_delta: float = setting(
        0.0, "Smallest change that counts as improvement.", low=0, high=MAX_VALUE
    )
    wrapped: str = setting(
        "median", "Pruner asked after the patience runs out.", choices=_WRAPPABLE
    )


@dataclass(frozen=True)
class ThresholdSettings:
    lower: float | None = setting(None, "Stop below this.", low=-MAX_VALUE, high=MAX_VALUE)
    upper: float | None = setting(None, "Stop above this.", low=-MAX_VALUE, high=MAX_VALUE)
    n_warmup_steps: int = setting(0, _WARMUP, low=0, high=MAX_EPOCHS)
    interval_steps: int = setting(1, _INTERVAL, low=1, high=MAX_EPOCHS)


@dataclass(frozen=True)
class Pruner(PrunerAlgorithm):
    """An Optuna pruner under a name: ``factory(**settings)`` builds it."""

    name: str
    description: str
    settings: type
    factory: Callable[..., BasePruner]
    problems: Callable[[Any], list[str]] = lambda _settings: []

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        """The settings, and a single objective measured every epoch to stop trials on."""
        assert spec.pruner is not None
        settings, errors = self.read_settings(spec.pruner.settings, ("pruner", "settings"))
        if settings is not None:
            errors += at(("pruner",), self.problems(settings))
        if len(spec.objectives) > 1:
            errors += at(("pruner",), ["early stopping needs a single objective"])
        elif spec.objective.metric in METRICS and not METRICS[spec.objective.metric].per_epoch:
            metric = spec.objective.metric
            errors += at(
                ("pruner",),
                [
                    f"early stopping needs an objective measured every epoch; {metric} is "
                    "measured at the end"
                ],
            )
        return errors

    def create(self, settings: Any) -> BasePruner:
        return self.factory(**as_dict(settings))


class SeveralObjectivesPruner(Pruner):
    """A pruner of a study of several objectives: the loop asks it with every trial's curve
    (:mod:`search.pruners_mo`), as Optuna cannot."""

    multi_objective = True

    def check(self, spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
        """The settings, and at least two objectives, one of them measured every epoch."""
        assert spec.pruner is not None
        _, errors = self.read_settings(spec.pruner.settings, ("pruner", "settings"))
        return errors + objective_problems(self.name, spec)


def _hyperband(min_resource: int, max_resource: int | None, reduction_factor: int) -> BasePruner:
    return HyperbandPruner(
        min_resource=min_resource,
        max_resource="auto" if max_resource is None else max_resource,
        reduction_factor=reduction_factor,
    )


def _patient(patience: int, min_delta: float, wrapped: str) -> BasePruner:
    # Optuna's PatientPruner asks its inner pruner through Optuna: asha is Optuna's own there.
    inner: BasePruner | None = None
    if wrapped == "asha":
        inner = SuccessiveHalvingPruner(**as_dict(AshaSettings()))
    elif wrapped != "none":
        inner = ALGORITHMS[wrapped].create(ALGORITHMS[wrapped].settings())
    return PatientPruner(inner, patience, min_delta)


def _threshold_problems(settings: Any) -> list[str]:
    if settings.lower is None and settings.upper is None:
        return ["threshold needs lower or upper"]
    return []


_PRUNERS = (
    Pruner(
        name="asha",
        description="Asynchronous successive halving: at rungs of min_resource * "
        "reduction_factor^k epochs, only the top 1/reduction_factor of trials go on.",
        settings=AshaSettings,
        factory=AshaPruner,
    ),
    Pruner(
        name="hyperband",
        description="Hyperband: several successive-halving brackets with different "
        "aggressiveness, so a bad choice of min_resource is hedged.",
        settings=HyperbandSettings,
        factory=_hyperband,
    ),
    Pruner(
        name="median",
        description="Stop a trial whose value is worse than the median of earlier trials at "
        "the same epoch.",
        settings=MedianSettings,
        factory=MedianPruner,
    ),
    Pruner(
        name="percentile",
        description="Stop a trial outside the best `percentile` of earlier trials at the "
        "same epoch.",
        settings=PercentileSettings,
        factory=PercentilePruner,
    ),
    Pruner(
        name="patient",
        description="Tolerate `patience` epochs without improvement before asking the wrapped "
        "pruner (or, with none, stop after them).",
        settings=PatientSettings,
        factory=_patient,
    ),
    Pruner(
        name="threshold",
        description="Stop a trial whose value leaves [lower, upper] (or turns NaN).",
        settings=ThresholdSettings,
        factory=ThresholdPruner,
        problems=_threshold_problems,
    ),
    Pruner(
        name="curve",
        description="Learning-curve extrapolation: fit pow3, exp and log-linear curves to a "
        "trial's partial curve and stop it when its predicted final value is worse than the "
        "best trial's with probability above `confidence`.",
        settings=CurveSettings,
        factory=CurvePruner,
    ),
    SeveralObjectivesPruner(
        name="mo_asha",
        description="ASHA for several objectives: at each rung, trials are ranked by "
        "non-dominated sorting (crowding distance breaks ties) and the top "
        "1/reduction_factor go on.",
        settings=MoAshaSettings,
        factory=MoAshaPruner,
    ),
    SeveralObjectivesPruner(
        name="mo_median",
        description="Median rule for several objectives: stop a trial ranked (by non-dominated "
        "sorting) in the worse half of the trials at its epoch, unless it is on their first "
        "front.",
        settings=MoMedianSettings,
        factory=MoMedianPruner,
    ),
)

ALGORITHMS: dict[str, Pruner] = {p.name: p for p in _PRUNERS}
