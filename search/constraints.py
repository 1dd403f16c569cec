"""Outcome constraints: a trial is feasible when every constrained metric is within its bound.

A study's ``constraints`` (``[{metric: param_count, le: 50000}, ...]``) are checked on each
finished trial's final metrics: the trial gets the user attributes ``feasible`` and
``violations`` (by constraint, how far past its bound, in the metric's units; 0 or less is
within it), and Optuna's constraint values (the system attributes ``constraints:<key>``, each
violation relative to its bound) that tpe, gp, nsga2 and nsga3 model. The best trial and the
Pareto front are taken among feasible trials only (:mod:`search.results`).

A constraint on ``param_count`` is known before training: the network a trial would train is
built on PyTorch's meta device (shapes only, no memory) and counted, and a trial past the
bound is recorded PRUNED with ``pruned_reason`` ``infeasible: param_count 81234 > 50000``
before any epoch. One on ``latency_ms`` too: the trial times its freshly built network on the
validation set before its first epoch (the weights do not change the time), and one past the
bound ends there, PRUNED with ``infeasible: latency_ms 0.61 > 0.5``, having trained nothing.
PRUNED, not FAIL: Optuna's TPE learns from pruned trials (an infeasible one
joins the worse group), while it ignores failed ones and would propose the same region again;
and a rejection is no failure of the study (``max_failed_trials``). It does count as a trial
started (``budget.max_trials``), which keeps a study bounded whatever its sampler proposes.
"""

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from models.data import DatasetInfo
from models.families import build_model
from models.metrics import metric_error
from models.training.config import TrainConfig, n_outputs
from search import optuna_compat
from search.algorithm import FieldError
from search.spec import Constraint, ExternalTask, FunctionTask, StudySpec, TrainTask

FEASIBLE = "feasible"  # user attribute: whether every constraint holds
VIOLATIONS = "violations"  # user attribute: by constraint key, how far past its bound
REASON = "pruned_reason"  # user attribute: why a trial was pruned (here: before training)
MAX_CONSTRAINTS = 16
# Metrics a trial times on its built network before the first epoch (search.trials.train.limits)
MEASURED_FIRST = frozenset({"latency_ms"})
# Metrics known from the built network alone: those, and the parameter count, counted here.
PRE_TRAINING = MEASURED_FIRST | {"param_count"}

# CMA-ES does not model constraints and says so after every trial; the study still honours
# them (the best trial is taken among feasible ones).
warnings.filterwarnings("ignore", message="Constraints have been set, but CmaEsSampler")


def key(c: Constraint) -> str:
    """The constraint's name in a trial's attributes: ``param_count<=50000``."""
    return f"{c.metric}<={_num(c.le)}" if c.le is not None else f"{c.metric}>={_num(c.ge)}"


def violation(c: Constraint, value: float) -> float:
    """How far ``value`` is past the bound (0 or less: within it), in the metric's units."""
    if c.le is not None:
        return value - c.le
    assert c.ge is not None
    return c.ge - value


def _relative(c: Constraint, excess: float) -> float:
    bound = c.le if c.le is not None else c.ge
    scale = abs(bound) if bound else 1.0
    return excess / scale


def constraint_errors(spec: StudySpec, data: DatasetInfo | None) -> list[FieldError]:
    """Why a study's constraints cannot be checked: a metric its trials never measure."""
    errors = []
    for i, c in enumerate(spec.constraints):
        loc = ("constraints", i, "metric")
        if isinstance(spec.task, ExternalTask):
            pass  # among the task's metrics: the external kind's check
        elif isinstance(spec.task, FunctionTask):
            if c.metric != "value":
                errors.append(
                    FieldError(loc, f"a function task measures value only, not {c.metric!r}")
                )
        elif data is not None and (problem := metric_error(c.metric, data.task)):
            errors.append(FieldError(loc, problem))
        if (c.le is None) == (c.ge is None):
            errors.append(FieldError(("constraints", i), "give exactly one of le or ge"))
    return errors


def evaluate(
    constraints: Sequence[Constraint], metrics: Mapping[str, Any]
) -> tuple[bool, dict[str, float]]:
    """Whether ``metrics`` meet every constraint, and each measured one's violation. A
    constrained metric that was not measured makes the trial infeasible."""
    found = {
        key(c): violation(c, float(metrics[c.metric])) for c in constraints if c.metric in metrics
    }
    feasible = len(found) == len(constraints) and all(
        math.isfinite(v) and v <= 0 for v in found.values()
    )
    return feasible, found


def reason(constraints: Sequence[Constraint], metrics: Mapping[str, Any]) -> str:
    """``infeasible: param_count 81234 > 50000`` (each broken constraint, ``;``-separated)."""
    broken = []
    for c in constraints:
        if c.metric not in metrics:
            broken.append(f"{c.metric} not measured")
        elif violation(c, float(metrics[c.metric])) > 0:
            sign, bound = (">", c.le) if c.le is not None else ("<", c.ge)
            broken.append(f"{c.metric} {_num(metrics[c.metric])} {sign} {_num(bound)}")
    return "infeasible: " + "; ".join(broken)


def _num(value: Any) -> str:
    """A whole number in full (a parameter count), any other to 6 significant digits."""
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else f"{number:g}"


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether a trial met its study's constraints (a trial of a study without: yes)."""
    return trial.user_attrs.get(FEASIBLE) is not False


def param_count(spec: StudySpec, params: Mapping[str, Any], info: DatasetInfo) -> int | None:
    """The trainable parameters of the network a trial with ``params`` would train, counted
    on the meta device; None when the task trains no catalog network (or it cannot build:
    the trial then fails where it runs, with its reason)."""
    if type(spec.task) is not TrainTask:
        return None
    if spec.task.init_from is not None and spec.task.init_from.freeze:
        return None  # frozen layers are not trainable: the count is the trained model's
    task = spec.task.with_params(params)
    try:
        out_units = n_outputs(TrainConfig(**task.training), info)
        with torch.device("meta"):
            net = build_model(dict(task.model), info.input_shape, out_units)
            return sum(p.numel() for p in net.parameters() if p.requires_grad)
    except Exception:
        return None


class Feasibility:
    """A study's constraints as the sampler loop applies them (nothing for a study without)."""

    def __init__(self, spec: StudySpec, info: DatasetInfo | None) -> None:
        self.spec = spec
        self.constraints = spec.constraints
        self.info = info
        self.early = [c for c in self.constraints if c.metric in PRE_TRAINING]

    def known_before(self, params: Mapping[str, Any]) -> dict[str, float]:
        """The constrained metrics known before training, for a trial with ``params``."""
        if not self.early or self.info is None:
            return {}
        count = param_count(self.spec, params, self.info)
        return {} if count is None else {"param_count": float(count)}

    def rejects(
        self, running: Any, study: optuna.Study, measured: Mapping[str, float] | None = None
    ) -> bool:
        """Record a trial PRUNED before any epoch when a constraint known before training
        fails (``running``: the loop's :class:`~search.loop.inflight.InFlight`): on what the
        scheduler counts (``measured`` None), or on what the trial ``measured`` of its network
        before its first epoch."""
        known = self.known_before(running.params) if measured is None else dict(measured)
        if not known:
            return False
        early = [c for c in self.early if c.metric in known]
        feasible, found = evaluate(early, known)
        if feasible:
            return False
        self._write(running.trial, found)
        running.set(
            **{FEASIBLE: False, VIOLATIONS: found, REASON: reason(early, known)},
            pruned_at_epoch=0,
            **{name: int(v) if name == "param_count" else v for name, v in known.items()},
        )
        running.save()
        optuna_compat.tell(study, running.trial, state=TrialState.PRUNED)
        return True

    def record(self, running: Any, metrics: Mapping[str, Any]) -> bool:
        """Record a finished trial's feasibility, before it is told; return it."""
        if not self.constraints:
            return True
        feasible, found = evaluate(self.constraints, metrics)
        running.set(**{FEASIBLE: feasible, VIOLATIONS: found})
        if not feasible:
            running.set(infeasible_reason=reason(self.constraints, metrics))
        self._write(running.trial, found)
        for c in self.constraints:  # not measured: infeasible to the sampler too
            if key(c) not in found:
                running.trial.set_constraint(key(c), 1.0)
        return feasible

    def _write(self, trial: optuna.Trial, found: Mapping[str, float]) -> None:
        by_key = {key(c): c for c in self.constraints}
        for name, excess in found.items():
            value = _relative(by_key[name], excess)
            trial.set_constraint(name, value if math.isfinite(value) else 1e30)
