"""The driver's side of a population study: every segment mirrored into Optuna, and when to
stop.

Every constant-hyperparameter *segment* of every member becomes one Optuna trial, created
RUNNING when the segment starts and told when it ends, so optuna-dashboard shows the
population live. :class:`Mirror` receives Tune's results (through the callback of
:mod:`search.pbt.driver`) in the driver's thread: every Optuna write happens there.
"""

import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from search import attrs as trial_attrs
from search import optuna_artifacts, optuna_compat
from search.algorithm import Outcome
from search.artifacts import USAGE, write_artifacts
from search.pbt.explore import Plan
from search.pbt.member import LINEAGE, RESULT, TORCHSCRIPT, WEIGHTS
from search.space import to_distribution
from search.spec import StudyStatus

log = logging.getLogger(__name__)
_SCHEDULE_USAGE = (
    USAGE + " pbt_schedule lists the hyperparameters each span of epochs trained with."
)


@dataclass(frozen=True)
class PBTOutcome(Outcome):
    """How a PBT study ended, and what it did.

    ``n_segments``: Optuna trials written; ``n_exploits``: segments that started from another
    member's checkpoint; ``best_trial``: the Optuna number of the best segment that reached
    the last epoch (None if none did).
    """

    n_segments: int = 0
    n_exploits: int = 0
    best_trial: int | None = None


@dataclass
class Segment:
    member: int
    index: int
    trial: optuna.Trial
    params: dict[str, Any]
    first_epoch: int
    parent: int | None
    origin: "Segment | None"  # the segment whose weights this one started from
    curve: list[dict[str, Any]] = field(default_factory=list)
    value: float | None = None


class Mirror:
    """The driver-side state of one study: segments, the Optuna writes, why it ended."""

    def __init__(
        self,
        plan: Plan,
        study: optuna.Study,
        stop: threading.Event,
        population: int,
        artifact_dir: Path | None,
        data_info: dict[str, Any],
        deadline: float | None,
    ) -> None:
        self.plan = plan
        self.study = study
        self.stop_event = stop
        self.population = population
        self.artifact_dir = artifact_dir
        self.artifact_store: FileSystemArtifactStore | None = None  # Optuna's, if any
        self.data_info = data_info
        self.deadline = deadline
        self.distributions = {p.name: to_distribution(p) for p in plan.spec.search_space}
        self.direction = plan.spec.objective.direction
        self.open: dict[int, Segment] = {}
        self.history: dict[int, list[Segment]] = {}
        self.metric_keys: dict[int, list[str]] = {}
        self.n_segments = 0
        self.n_exploits = 0
        self.errors: list[str] = []
        self.finished: list[tuple[float, int]] = []  # (value, trial number) at the last epoch
        self.ended: tuple[StudyStatus, str] | None = None
        # Set when the service shuts down: stop mirroring, leave Tune's experiment and the
        # open segments as they are, for a restore to continue them.
        self.suspend = threading.Event()

    @property
    def suspended(self) -> bool:
        return self.suspend.is_set()

    def restore(self) -> None:
        """Rebuild the segments from the study's trials, before Ray Tune restores the
        population: members resumed from their checkpoints continue their open segments."""
        by_number: dict[int, Segment] = {}
        for t in sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number):
            attrs = t.user_attrs
            if "pbt_member" not in attrs:
                continue
            member = int(attrs["pbt_member"])
            own = self.history.setdefault(member, [])
            parent = attrs.get("pbt_parent")
            origin = own[-1] if own else None
            if parent is not None:
                origin = by_number.get(attrs.get("pbt_parent_trial", -1))
                self.n_exploits += 1
            first_epoch = int(attrs.get("pbt_epochs", [0, 0])[0])
            trial = optuna_compat.trial_of(self.study, optuna_compat.trial_id_of(t))
            seg = Segment(member, len(own), trial, dict(t.params), first_epoch, parent, origin)
            seg.curve = trial_attrs.trial_curve(t)
            values = t.intermediate_values
            seg.value = t.value if t.value is not None else values.get(max(values, default=-1))
            own.append(seg)
            by_number[t.number] = seg
            self.n_segments += 1
            if seg.curve:
                self.metric_keys[member] = [k for k in seg.curve[-1] if k != "epoch"]
            if t.state == TrialState.RUNNING:
                self.open[member] = seg
            last = seg.curve[-1]["epoch"] if seg.curve else 0
            if t.state == TrialState.COMPLETE and last >= self.plan.epochs and t.value is not None:
                self.finished.append((t.value, t.number))

    # -- stop conditions (Tune polls them) --

    def should_stop(self) -> bool:
        if self.ended is not None:
            return True
        if self.stop_event.is_set():
            self.ended = (StudyStatus.STOPPED, "stopped before the population finished training")
        elif self.deadline is not None and time.time() >= self.deadline:
            self.ended = (StudyStatus.COMPLETED, "timeout reached")
        return self.ended is not None

    # -- segments --

    def _open_segment(self, member: int, lineage: dict[str, Any], epoch: int) -> Segment:
        own = self.history.setdefault(member, [])
        parent = lineage.get("parent")
        exploit_epoch = int(lineage.get("exploit_epoch") or 0)
        origin = own[-1] if own else None  # a member that resumed after its segment closed
        if lineage["start"] == "fresh":
            origin = None
        if parent is not None:
            # The parent's segment that was training when it saved the cloned checkpoint.
            covering = [s for s in self.history.get(parent, []) if s.first_epoch <= exploit_epoch]
            origin = covering[-1] if covering else None
            self.n_exploits += 1
        attrs = {
            "pbt_method": self.plan.method,
            "pbt_member": member,
            "pbt_segment": len(own),
            "pbt_parent": parent,
            "pbt_parent_trial": origin.trial.number if parent is not None and origin else None,
            "pbt_exploit_epoch": exploit_epoch if parent is not None else None,
            "pbt_perturbation": lineage.get("perturbation", {}),
            "seed": self.plan.spec.seed + member,
        }
        user, system = trial_attrs.split(attrs)
        frozen = optuna.trial.create_trial(
            state=TrialState.RUNNING,
            params=lineage["params"],
            distributions=self.distributions,
            user_attrs=user,
            system_attrs=system,
        )
        # One write creates the trial with its params and lineage; ask() would pop any
        # WAITING trial of the study and run the sampler for nothing.
        trial = optuna_compat.create_trial(self.study, frozen)
        seg = Segment(member, len(own), trial, lineage["params"], epoch, parent, origin)
        own.append(seg)
        self.open[member] = seg
        self.n_segments += 1
        return seg

    def on_result(self, member: int, result: Mapping[str, Any]) -> None:
        epoch = int(result["epoch"])
        if LINEAGE in result:
            lineage = json.loads(result[LINEAGE])
            self.metric_keys[member] = lineage["metrics"]
            current = self.open.get(member)
            # A member resumes its open segment, unless a restored experiment (saved a
            # little before the crash) resumes it with the hyperparameters of an older one.
            if (
                current is None
                or lineage["start"] != "resume"
                or lineage["params"] != current.params
            ):
                if current is not None:
                    self._close(current)
                self._open_segment(member, lineage, epoch)
        seg = self.open.get(member)
        if seg is None:  # a result of a member whose segment was already closed
            return
        value = float(result[self.plan.monitor])
        point = {"epoch": epoch, **{k: result[k] for k in self.metric_keys.get(member, [])}}
        # A retried member re-runs epochs after its last checkpoint: keep the latest run.
        seg.curve = [c for c in seg.curve if c["epoch"] < epoch] + [point]
        trial_attrs.write(seg.trial, {"curve": seg.curve, "pbt_epochs": [seg.first_epoch, epoch]})
        if math.isfinite(value):
            seg.trial.report(value, step=epoch)
        seg.value = value
        target = self.plan.spec.budget.target_value
        reached = target is not None and (
            value >= target if self.direction == "maximize" else value <= target
        )
        if reached and self.ended is None:
            reason = (
                f"target value {target:g} reached by trial {seg.trial.number} "
                f"(member {member}, epoch {epoch}: {value:g})"
            )
            self.ended = (StudyStatus.COMPLETED, reason)

    def _close(self, seg: Segment, cut_short: str | None = None) -> None:
        del self.open[seg.member]
        if seg.value is None or not math.isfinite(seg.value):
            reason = (
                "the segment ended before its first epoch"
                if seg.value is None
                else f"non-finite objective value {seg.value}"
            )
            trial_attrs.write(seg.trial, {"fail_reason": reason})
            self.study.tell(seg.trial, state=TrialState.FAIL)
            return
        if cut_short is not None:
            trial_attrs.write(seg.trial, {"pbt_cut_short": cut_short})
        self.study.tell(seg.trial, seg.value)

    def on_complete(self, member: int, checkpoint: Any) -> None:
        seg = self.open.get(member)
        if seg is None or not seg.curve or seg.curve[-1]["epoch"] < self.plan.epochs:
            return  # stopped before its last epoch by the study's end: finish() closes it
        if checkpoint is not None:
            try:
                self._save_final(seg, checkpoint)
            except Exception as exc:  # the segment's value stands without its exports
                log.warning("member %d: cannot read its final checkpoint: %s", member, exc)
        self._close(seg)
        if seg.value is not None and math.isfinite(seg.value):
            self.finished.append((seg.value, seg.trial.number))

    def _save_final(self, seg: Segment, checkpoint: Any) -> None:
        with checkpoint.as_directory() as folder:
            src = Path(folder)
            summary = json.loads((src / RESULT).read_text())
            results = {"final_metrics": summary["metrics"], "grad_norms": summary["grad_norms"]}
            trial_attrs.write(seg.trial, results)
            if self.artifact_dir is None:
                return
            dest = self.artifact_dir / f"trial-{seg.trial.number}"
            record = {
                "trial": seg.trial.number,
                "params": seg.params,
                "seed": self.plan.spec.seed + seg.member,
                "metrics": summary["metrics"],
                "pbt_schedule": self._schedule(seg),
                "usage": _SCHEDULE_USAGE,
            }
            weights, torchscript = (src / WEIGHTS).read_bytes(), (src / TORCHSCRIPT).read_bytes()
            write_artifacts(dest, weights, torchscript, self.plan.spec, record, self.data_info)
        if self.artifact_store is not None:  # before the segment is told
            optuna_artifacts.upload_trial(self.artifact_store, seg.trial, dest, seg.curve)
        trial_attrs.write(seg.trial, {"artifact_uri": str(dest)})

    def _schedule(self, seg: Segment) -> list[dict[str, Any]]:
        """The spans of epochs, back through the ancestors, that trained ``seg``'s weights."""
        spans = []
        last = self.plan.epochs
        current: Segment | None = seg
        while current is not None:
            spans.append(
                {
                    "epochs": [current.first_epoch, last],
                    "member": current.member,
                    "trial": current.trial.number,
                    "params": current.params,
                }
            )
            last = current.first_epoch - 1
            current = current.origin
        return spans[::-1]

    def on_error(self, member: int, reason: str, config: Mapping[str, Any]) -> None:
        self.errors.append(f"member {member}: {reason}")
        seg = self.open.pop(member, None)
        if seg is None:  # it failed before its segment's first epoch: record it all the same
            lineage = {"start": "failed", "params": self.plan.decode(config)}
            seg = self._open_segment(member, lineage, 0)
            del self.open[member]
        trial_attrs.write(seg.trial, {"fail_reason": reason})
        self.study.tell(seg.trial, state=TrialState.FAIL)

    def finish(self) -> None:
        """Close what is still open once Tune returns: the study ended before them."""
        if self.suspended:
            return  # the next start restores the population and continues them
        why = self.ended[1] if self.ended else "the population stopped training"
        for seg in list(self.open.values()):
            if seg.value is None:
                del self.open[seg.member]
                failed = {"fail_reason": f"interrupted: {why}", "interrupted": True}
                trial_attrs.write(seg.trial, failed)
                self.study.tell(seg.trial, state=TrialState.FAIL)
            else:
                self._close(seg, cut_short=why)

    def outcome(self) -> PBTOutcome:
        finished = sorted(self.finished, reverse=self.direction == "maximize")
        best = finished[0][1] if finished else None
        if self.ended is not None:
            return self._outcome(*self.ended, best)
        if not self.finished and self.errors:
            return self._outcome(StudyStatus.FAILED, f"every member failed; {self.errors[0]}", None)
        reason = (
            f"{len(self.finished)} of {self.population} members trained {self.plan.epochs} "
            f"epochs ({self.n_exploits} exploits)"
        )
        if self.errors:
            reason += f"; {len(self.errors)} failed, first: {self.errors[0]}"
        return self._outcome(StudyStatus.COMPLETED, reason, best)

    def _outcome(self, status: StudyStatus, reason: str, best: int | None) -> PBTOutcome:
        return PBTOutcome(status, reason[:1000], self.n_segments, self.n_exploits, best)


def trial_error(trial: Any) -> str:
    """Why a Tune trial failed, from the error text Tune just wrote next to the driver (its
    pickled twin is never loaded: no file in the data directory is unpickled)."""
    text = trial.error_file
    try:
        if text and Path(text).is_file():
            lines = [line for line in Path(text).read_text().splitlines() if line.strip()]
            if lines:
                # The traceback's last line, "package.module.Error: message": the exception's
                # name as failure_reason gives it.
                kind, sep, message = lines[-1].strip().partition(": ")
                if sep and kind.replace(".", "").replace("_", "").isalnum():
                    kind = kind.rsplit(".", 1)[-1]
                return f"{kind}{sep}{message}"[:1000]
    except Exception as exc:  # the reason is best effort; the failure itself is certain
        log.warning("cannot read why member %s failed: %s", trial, exc)
    return "the member failed"
