"""How a trial ends when it does not finish: its one-line reason, whether its worker was lost,
and what becomes of trials a study left running while no scheduler ran it."""

import optuna
import ray
from optuna.trial import TrialState

from search import optuna_compat

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
        trial.set_user_attr("fail_reason", reason)
        study.tell(frozen.number, state=TrialState.FAIL)
