"""How a trial ends when it does not finish: its one-line reason, whether its worker was lost,
and what becomes of trials a study left running while no scheduler ran it."""

from collections.abc import Sequence

import optuna
import ray
from optuna.trial import FrozenTrial, TrialState

from search import attrs, optuna_compat
from search.algorithm import Outcome
from search.spec import StudyStatus

INTERRUPTED = "interrupted"  # user attribute: cut short by a stop or a shutdown, not counted
MAX_REASON = 1000

# A lost worker or node is not the trial's fault: the loop resumes the trial (from its last
# checkpoint) on another worker, up to the retries. Exceptions raised by the training code, and
# Ray's out-of-memory kills, are the trial's own outcome and are never retried.
_LOST = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,
)


def failure_reason(exc: BaseException) -> str:
    """A one-line reason for a failed trial, naming the original exception."""
    if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return "out of memory: Ray killed the worker to protect the node"
    text = " / ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason[:MAX_REASON]


def lost_worker(exc: BaseException) -> bool:
    """Whether a trial's error means its worker or node died (not the trial's own failure)."""
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return False
    return isinstance(exc, _LOST)


def abandon(study: optuna.Study, reason: str) -> None:
    """Fail the trials a study left RUNNING (it ended while no scheduler ran it)."""
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = optuna_compat.trial_of(study, optuna_compat.trial_id_of(frozen))
        attrs.write(trial, {"fail_reason": reason})
        study.tell(frozen.number, state=TrialState.FAIL)


def count_trials(every: Sequence[FrozenTrial]) -> tuple[int, int, int]:
    """What a study's budget counts of its trials: (started, queued, failed).

    Trials cut short by a stop were not the study's fault: they neither use up the budget nor
    count as failures. Trials copied from another study (warm start) were not run here and do
    not count either. Queued warm-start points (WAITING) count when they run, not before.
    Resumed trials count once, as themselves.
    """
    trials = [
        t
        for t in every
        if t.state != TrialState.WAITING
        and not t.user_attrs.get(INTERRUPTED)
        and not str(t.user_attrs.get("warm_start", "")).startswith("study")
    ]
    waiting = sum(t.state == TrialState.WAITING for t in every)
    return len(trials), waiting, sum(t.state == TrialState.FAIL for t in trials)


def ended(
    draining: bool, trials: tuple[int, int, str], timed_out: bool, capped: str | None
) -> Outcome:
    """How a study ends with nothing in flight and nothing more to start. ``trials``: how
    many ran, how many failed, the last failure's reason; ``capped``: the reason when the
    sampler has nothing more to propose (else None)."""
    n_trials, n_failed, last_failure = trials
    if draining:
        return Outcome(StudyStatus.STOPPED, "stopped by user after its trials finished")
    if n_trials and n_failed >= n_trials:
        # Nothing to show for the budget: that is a failure, whatever ended it.
        reason = f"every trial failed ({n_failed}); the last: {last_failure}"
        return Outcome(StudyStatus.FAILED, reason[:MAX_REASON])
    if timed_out:
        return Outcome(StudyStatus.COMPLETED, "timeout reached")
    if capped is not None:
        return Outcome(StudyStatus.COMPLETED, capped)
    return Outcome(StudyStatus.COMPLETED, "max_trials reached")


def reaches(value: float, target: float, direction: str) -> bool:
    """Whether an objective ``value`` meets the budget's ``target_value``."""
    return value >= target if direction == "maximize" else value <= target
