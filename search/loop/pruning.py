"""Whether a trial stops after an epoch: Optuna's pruners, or a pruner that reads whole curves.

Optuna's pruners read one objective's intermediate values (``Trial.should_prune`` raises
NotImplementedError for a study of several objectives). An :class:`EpochPruner` is asked by the
loop itself instead, with every metric of the trial's curve: it ranks several objectives at
once (multi-objective ASHA) or fits the partial curve (extrapolation). It keeps the curves it
was shown in memory and reads the study once per loop (a resumed study's history), so a
decision costs no database read.
"""

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.pruners import BasePruner, NopPruner
from optuna.trial import FrozenTrial, TrialState

from models.data import DatasetInfo
from search import attrs
from search.constraints import PRE_TRAINING, is_feasible, param_count
from search.loop.inflight import InFlight
from search.spec import Objective, StudySpec, TrainTask

Curve = Sequence[Mapping[str, Any]]
_DEFAULT_EPOCHS = 10  # models.training.config.TrainConfig's default


@dataclass(frozen=True)
class Verdict:
    """Why a trial stops: the rung (or epoch) it was judged at and a one-line reason."""

    rung: int
    reason: str


class EpochPruner(BasePruner):
    """A pruner the loop asks with a trial's whole curve (see the module docstring)."""

    def __init__(self) -> None:
        self.objectives: tuple[Objective, ...] = ()
        self.curves: dict[int, Curve] = {}
        self.known: dict[int, dict[str, float]] = {}  # each trial's metrics known from its start
        self.finals: dict[int, list[float]] = {}  # each finished trial's objective values
        self.infeasible: set[int] = set()  # finished trials that broke a constraint
        self._loaded = False

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Never through Optuna: the loop asks :meth:`judge`."""
        return False

    def load(self, study: optuna.Study, objectives: Sequence[Objective]) -> None:
        """Learn the study's objectives and, once, every earlier trial's curve and values."""
        self.objectives = tuple(objectives)
        if self._loaded:
            return
        self._loaded = True
        for frozen in study.get_trials(deepcopy=False):
            curve = attrs.trial_curve(frozen)
            if curve:
                self.curves[frozen.number] = curve
            known = {
                name: float(value)
                for name in PRE_TRAINING
                if isinstance(value := frozen.user_attrs.get(name), int | float)
            }
            if known:
                self.known[frozen.number] = known
            if frozen.state == TrialState.COMPLETE and frozen.values is not None:
                self.finals[frozen.number] = [float(v) for v in frozen.values]
                if not is_feasible(frozen):
                    self.infeasible.add(frozen.number)

    def finished(self, number: int, values: Sequence[float], feasible: bool = True) -> None:
        """A trial of this loop completed with ``values`` (``feasible``: within the study's
        constraints; an infeasible one is no incumbent)."""
        self.finals[number] = [float(v) for v in values]
        if not feasible:
            self.infeasible.add(number)

    def observe(self, number: int, curve: Curve, known: Mapping[str, float] | None = None) -> None:
        """The trial's curve so far (kept, not copied: the loop appends to it), and the metrics
        it has from the start (``known``: its parameter count, counted before it trained, and
        its latency, timed then)."""
        self.curves[number] = curve
        if known:
            self.known[number] = dict(known)

    @abstractmethod
    def judge(self, number: int, epochs: int | None) -> Verdict | None:
        """Whether trial ``number`` (its curve observed) stops now; ``epochs``: its full length
        (None when unknown)."""

    def decides(self, epochs: int) -> frozenset[int] | None:
        """The epochs (of ``epochs``) after which :meth:`judge` may stop a trial; None: any."""
        return None


def decision_epochs(pruner: BasePruner, epochs: int | None) -> frozenset[int] | None:
    """The epochs after which ``pruner`` may stop a trial of ``epochs`` epochs, which a trial
    sends at once (:mod:`search.trials.batching`): none without a pruner; an
    :class:`EpochPruner`'s own; any (None) for Optuna's, which may decide after every epoch."""
    if isinstance(pruner, NopPruner):
        return frozenset()
    if isinstance(pruner, EpochPruner) and epochs is not None:
        return pruner.decides(epochs)
    return None


def curve_value(
    curve: Curve, epoch: int, metric: str, known: Mapping[str, float] | None = None
) -> float | None:
    """``metric`` at ``epoch`` of ``curve``: that epoch's; else a value the trial had from its
    start (``known``: its parameter count) or reported once, as a constant; else None."""
    if epoch > len(curve):
        return None
    point = curve[epoch - 1]
    if int(point.get("epoch", epoch)) != epoch:  # a curve with a gap: look it up
        point = next((p for p in curve if p.get("epoch") == epoch), {})
    if metric in point:
        return float(point[metric])
    if known and metric in known:
        return float(known[metric])
    constant = next((p[metric] for p in curve if metric in p), None)
    return None if constant is None else float(constant)


def trial_epochs(spec: StudySpec, params: Mapping[str, Any]) -> int | None:
    """How many epochs a trial of ``spec`` with ``params`` trains (None for no training)."""
    if "training.epochs" in params:
        return int(params["training.epochs"])
    if isinstance(spec.task, TrainTask):
        return int(spec.task.training.get("epochs", _DEFAULT_EPOCHS))
    return None


def should_stop(
    study: optuna.Study, spec: StudySpec, running: InFlight, info: DatasetInfo | None
) -> dict[str, Any] | None:
    """The attributes of a trial in flight that stops after its curve's last epoch, or None.

    Reports the first objective's value to Optuna (a single objective measured every epoch)
    unless the loop batches it (:func:`batched_metric`), then asks the study's pruner: an
    :class:`EpochPruner` with the curve, else Optuna's.
    ``info``: the study's dataset, to count a trial's parameters before it trains when an
    objective is its parameter count (constant over its epochs); a latency objective is known
    as constant too, from the trial's measure before its first epoch.
    """
    trial, curve = running.trial, running.curve
    point = curve[-1]
    epoch = int(point["epoch"])
    metric = spec.objective.metric
    fresh = epoch > running.reported  # a resumed trial's epochs: held already
    if running.batched is None and len(spec.objectives) == 1 and metric in point and fresh:
        trial.report(float(point[metric]), step=epoch)
    pruner = study.pruner
    if isinstance(pruner, EpochPruner):
        pruner.load(study, spec.objectives)
        if "known" not in running.notes:
            known = _known_before(spec, running.params, info)
            running.notes["known"] = {**known, **running.notes.get("measured", {})}
        pruner.observe(trial.number, curve, running.notes["known"])
        verdict = pruner.judge(trial.number, trial_epochs(spec, running.params))
        if verdict is None:
            return None
        return {"pruned_at_rung": verdict.rung, "pruned_reason": verdict.reason}
    if len(spec.objectives) > 1 or metric not in point:
        return None  # Optuna prunes one objective; final-only metrics have no curve
    if not trial.should_prune():
        return None
    # A pruner of ours that Optuna asks (bohb's) may say why; Optuna's own say nothing.
    verdict = getattr(pruner, "verdicts", {}).get(trial.number)
    if not isinstance(verdict, Verdict):
        return {}
    return {"pruned_at_rung": verdict.rung, "pruned_reason": verdict.reason}


def batched_metric(study: optuna.Study, spec: StudySpec) -> str | None:
    """The objective whose intermediate values the loop writes with a trial's curve, batched,
    instead of one ``Trial.report`` per epoch: a single objective, when no Optuna pruner reads
    them as they come (none, or an :class:`EpochPruner`, which reads the curves it is shown)."""
    if len(spec.objectives) != 1 or not isinstance(study.pruner, EpochPruner | NopPruner):
        return None
    return spec.objective.metric


def _known_before(
    spec: StudySpec, params: Mapping[str, Any], info: DatasetInfo | None
) -> dict[str, float]:
    """The objectives a trial's network tells before training: its parameter count."""
    if info is None or "param_count" not in {o.metric for o in spec.objectives}:
        return {}
    count = param_count(spec, params, info)
    return {} if count is None else {"param_count": float(count)}


def told(study: optuna.Study, number: int, values: Sequence[float], feasible: bool) -> None:
    """Tell an :class:`EpochPruner` that trial ``number`` completed with ``values``."""
    if isinstance(study.pruner, EpochPruner):
        study.pruner.finished(number, values, feasible)
