"""What a client says of its trial: intermediate metrics (answered with the pruning decision)
and the outcome, recorded as the sampler loop records a trained trial's."""

import math
from collections.abc import Mapping
from typing import Literal

import optuna
from optuna.trial import TrialState

from search import attrs, optuna_compat
from search.constraints import Feasibility
from search.loop.inflight import InFlight
from search.loop.pruning import batched_metric, should_stop
from search.spec import StudySpec

Outcome = Literal["complete", "fail", "pruned"]


class BadReport(ValueError):
    """What a client sent cannot be recorded: ``field`` names the part of its request."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _running(study: optuna.Study, trial_id: int) -> tuple[optuna.Trial, InFlight]:
    frozen = optuna_compat.frozen(study, trial_id)
    trial = optuna_compat.trial_of(study, trial_id)
    curve = attrs.trial_curve(frozen)
    running = InFlight(trial, curve=curve, curve_saved=len(curve), params=dict(frozen.params))
    running.reported = max(frozen.intermediate_values, default=0)
    return trial, running


def _finite(metrics: Mapping[str, float], field: str) -> dict[str, float]:
    out = {}
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise BadReport(f"{field}.{name}", f"{name} is {value}: report finite numbers")
        out[name] = float(value)
    return out


def report(
    study: optuna.Study, spec: StudySpec, trial_id: int, step: int, metrics: Mapping[str, float]
) -> dict[str, object] | None:
    """Record ``metrics`` at ``step`` on the trial's curve; the attributes of a pruning
    decision (the trial is PRUNED then: its client stops), or None (it goes on).

    Raises:
        BadReport: a non-finite value, or a step not after the last one reported.
    """
    values = _finite(metrics, "metrics")
    trial, running = _running(study, trial_id)
    last = int(running.curve[-1]["epoch"]) if running.curve else 0
    if step <= last:
        raise BadReport("step", f"step {step} is not after the last step reported ({last})")
    running.curve.append({"epoch": step, **values})
    running.batched = batched_metric(study, spec)
    stop = should_stop(study, spec, running, None)
    if stop is None:
        running.save()
        return None
    running.set(pruned_at_epoch=step, **stop)
    running.save()
    optuna_compat.tell(study, trial, state=TrialState.PRUNED)
    return {"pruned_at_epoch": step, **stop}


def tell(
    study: optuna.Study,
    spec: StudySpec,
    trial_id: int,
    outcome: Outcome,
    metrics: Mapping[str, float],
    reason: str,
) -> TrialState:
    """Finish the trial: ``complete`` with its objectives among ``metrics`` (constraints
    checked on them), ``fail`` with ``reason``, or ``pruned`` by its client.

    Raises:
        BadReport: a complete trial without an objective's metric, or a non-finite value.
    """
    values = _finite(metrics, "metrics")
    trial, running = _running(study, trial_id)
    if values:
        running.set(final_metrics=values)
    if outcome == "fail":
        running.set(fail_reason=(reason or "failed on its client")[:500])
        running.save()
        optuna_compat.tell(study, trial, state=TrialState.FAIL)
        return TrialState.FAIL
    if outcome == "pruned":
        running.set(pruned_reason=(reason or "pruned by its client")[:500])
        running.save()
        optuna_compat.tell(study, trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    missing = [o.metric for o in spec.objectives if o.metric not in values]
    if missing:
        raise BadReport("metrics", f"a complete trial tells its objectives: missing {missing}")
    objective = [values[o.metric] for o in spec.objectives]
    Feasibility(spec, None).record(running, values)
    running.save()
    optuna_compat.tell(study, trial, objective[0] if len(objective) == 1 else objective)
    return TrialState.COMPLETE
