"""External trials: this process evaluates a study's trials, the service decides which.

A study whose task is ``{kind: external, metrics: [...]}`` runs nothing on the cluster: a
client asks for a trial (its parameters and a lease), reports metrics as it goes, and tells
the outcome (docs/external.md). :meth:`RemoteStudy.optimize` is that loop, in the manner of
Optuna's ``study.optimize``; a thread renews the lease while the objective runs; any number of
processes may optimize one study at once. It drives any :class:`TrialClient` (this module
imports nothing of :mod:`service.client.api`, which imports it)::

    def objective(trial: ExternalTrial) -> float:
        for step in range(1, 21):
            trial.report(loss := train_one_epoch(trial.params), step)
            if trial.should_prune():
                raise TrialPruned()
        return loss

    Client(url, key).study(7).optimize(objective, n_trials=20)
"""

import logging
import math
import numbers
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict

from service.client.errors import ApiError, Unreachable

TellState = Literal["complete", "fail", "pruned"]
OutcomeState = Literal["complete", "fail", "pruned", "lost"]
Metrics = dict[str, float]
MAX_REASON = 500  # characters of a reason the API keeps
log = logging.getLogger(__name__)


class Asked(TypedDict):
    """``POST /studies/{id}/ask``'s answer: a trial to evaluate and the lease that holds it."""

    number: int
    params: dict[str, Any]
    seed: int
    lease: str
    lease_s: float
    lease_expires_at: str


class Reported(TypedDict):
    """A report's answer: whether the study's pruner stopped the trial (already PRUNED)."""

    should_prune: bool
    reason: str | None
    lease_expires_at: str


class Renewed(TypedDict):
    lease_expires_at: str


class TrialClient(Protocol):
    """What the loop needs of a client (:class:`service.client.api.Client` has it)."""

    def ask(self, study_id: int) -> Asked: ...

    def report_trial(
        self, study_id: int, number: int, lease: str, step: int, metrics: Metrics
    ) -> Reported: ...

    def tell(
        self,
        study_id: int,
        number: int,
        lease: str,
        state: TellState,
        metrics: Metrics | None = None,
        reason: str | None = None,
    ) -> object: ...

    def renew(self, study_id: int, number: int, lease: str) -> Renewed: ...


class TrialPruned(Exception):
    """Raise it in an objective to end its trial as pruned (``optuna.TrialPruned`` too)."""


class TrialFailed(Exception):
    """Raise it in an objective to fail its trial with ``str(exc)`` as the reason and go on
    to the next trial (it is not raised again, as other exceptions are)."""


class LeaseLost(Exception):
    """The service ended the trial meanwhile (its lease expired, the study stopped): a report
    raises it; the loop tells nothing and goes on."""


@dataclass(frozen=True)
class Outcome:
    """What became of a trial this process evaluated.

    ``state``: ``complete``, ``fail``, ``pruned`` (by the objective or the study's pruner) or
    ``lost`` (the service ended it first: nothing was told). ``metrics``: those told for a
    complete trial, else the last reported; ``step``: the last step reported.
    """

    number: int
    state: OutcomeState
    params: dict[str, Any]
    metrics: Metrics = field(default_factory=dict)
    step: int | None = None
    reason: str | None = None


class ExternalTrial:
    """A trial being evaluated here: ``number``, ``params``, ``seed`` (for the objective's own
    random generators), and :meth:`report` / :meth:`should_prune` as in Optuna."""

    def __init__(
        self, client: TrialClient, study_id: int, asked: Asked, objectives: Sequence[str]
    ) -> None:
        self.client, self.study_id = client, study_id
        self.number: int = asked["number"]
        self.params: dict[str, Any] = dict(asked["params"])
        self.seed: int = asked["seed"]
        self.lease: str = asked["lease"]
        self.lease_s = float(asked.get("lease_s") or 60.0)
        self.lease_expires_at: str | None = asked.get("lease_expires_at")
        self.objectives = tuple(objectives)
        self.last_step: int | None = None
        self.last_metrics: Metrics = {}
        self.pruned_by_service: str | None = None  # the service's reason, once it pruned
        self.lost: str | None = None  # why the service no longer holds the lease
        self.last_contact = time.monotonic()

    def report(self, value: float | Mapping[str, float] | Sequence[float], step: int) -> None:
        """Report metrics at ``step`` (0, 1, ...): a number is the study's first objective's,
        a mapping names its metrics (among the task's), a sequence gives one per objective.

        Raises:
            LeaseLost: the service ended the trial meanwhile: stop evaluating it.
        """
        if self.lost is not None:
            raise LeaseLost(self.lost)
        if self.pruned_by_service is not None:
            return  # pruned already: nothing more is recorded
        metrics = as_metrics(value, self.objectives, "a report")
        try:
            answer = self.client.report_trial(self.study_id, self.number, self.lease, step, metrics)
        except ApiError as exc:
            if exc.status in (404, 409):
                self.lost = f"the service ended trial {self.number}: {exc.detail}"
                raise LeaseLost(self.lost) from exc
            raise
        self.touch(answer.get("lease_expires_at"))
        self.last_step, self.last_metrics = step, metrics
        if answer.get("should_prune"):
            self.pruned_by_service = answer.get("reason") or "pruned by the study's pruner"

    def should_prune(self) -> bool:
        """Whether to stop: the study's pruner stopped the trial at the last report (or the
        service ended it)."""
        return self.pruned_by_service is not None or self.lost is not None

    def touch(self, expires_at: str | None) -> None:
        """The service renewed the lease (a report, a renew) now."""
        self.last_contact = time.monotonic()
        self.lease_expires_at = expires_at or self.lease_expires_at


Objective = Callable[[ExternalTrial], object]
Catch = tuple[type[Exception], ...]


class _Heartbeat:
    """Renews a trial's lease every ``lease_s / 3`` without a report, in a daemon thread."""

    def __init__(self, trial: ExternalTrial) -> None:
        self.trial = trial
        self.stopped = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"tuneforge-lease-{trial.number}", daemon=True
        )

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        trial, interval = self.trial, self.trial.lease_s / 3
        while not self.stopped.wait(max(0.0, trial.last_contact + interval - time.monotonic())):
            if time.monotonic() < trial.last_contact + interval:
                continue  # a report renewed the lease meanwhile
            try:
                renewed = trial.client.renew(trial.study_id, trial.number, trial.lease)
            except ApiError as exc:
                if exc.status in (404, 409):
                    trial.lost = f"the service ended trial {trial.number}: {exc.detail}"
                    return
                log.warning("trial %d: renewing its lease: %s", trial.number, exc)
            except Unreachable as exc:
                log.warning("trial %d: renewing its lease: %s", trial.number, exc)
            else:
                trial.touch(renewed.get("lease_expires_at"))
                continue
            if self.stopped.wait(min(interval, 1.0)):  # try again soon: the lease may hold
                return


def as_metrics(value: object, objectives: Sequence[str], what: str) -> Metrics:
    """``value`` as metrics by name: a number is the first objective's, a mapping names
    them, a sequence gives one per objective in order. TypeError or ValueError else."""
    if isinstance(value, Mapping):
        return {str(name): _number(v, f"{what}'s {name}") for name, v in value.items()}
    if _is_number(value) and objectives:
        return {objectives[0]: _number(value, f"{what}'s {objectives[0]}")}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) != len(objectives):
            raise ValueError(
                f"{what} has {len(value)} values for the objectives {list(objectives)}: "
                "give one per objective, or a dict of metrics"
            )
        return {
            name: _number(v, f"{what}'s {name}") for name, v in zip(objectives, value, strict=True)
        }
    objective = f"the first objective's, {objectives[0]}" if objectives else "no objective"
    raise TypeError(f"{what} is {value!r}: give a number ({objective}), a dict or a list")


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number(value: object, what: str) -> float:
    if not _is_number(value):
        raise TypeError(f"{what} is {value!r}, not a number")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(f"{what} is {number}")
    return number


def _is_pruned(exc: BaseException) -> bool:
    # optuna.TrialPruned by its name: the client does not import Optuna.
    return any(cls.__name__ == "TrialPruned" for cls in type(exc).__mro__)


class RemoteStudy(dict[str, Any]):
    """A study's JSON (``GET /studies/{id}``, indexed as a dict), and for a study whose task is
    external, :meth:`optimize`: evaluate its trials in this process."""

    def __init__(self, client: TrialClient, study_id: int, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.client, self.id = client, study_id
        self.stop_reason: str | None = None  # why the last optimize returned

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return dict, (dict(self),)  # copied or pickled: the JSON, without the client

    @property
    def objectives(self) -> list[str]:
        """The objectives' metrics, in order (a returned sequence follows it)."""
        spec = self.get("spec") or {}
        given = spec.get("objectives") or ([spec["objective"]] if spec.get("objective") else [])
        return [str(o["metric"]) for o in given]

    @property
    def metrics(self) -> list[str] | None:
        """The metrics the task measures (``task.metrics``), None when not known."""
        task = (self.get("spec") or {}).get("task") or {}
        return [str(m) for m in task["metrics"]] if task.get("metrics") else None

    def optimize(
        self,
        objective: Objective,
        n_trials: int | None = None,
        timeout: float | None = None,
        catch: Catch = (),
        callbacks: Sequence[Callable[[Outcome], None]] = (),
    ) -> list[Outcome]:
        """Ask trials and evaluate each with ``objective`` until the study has none left to
        ask (a 409), ``n_trials`` were evaluated or ``timeout`` seconds passed (no trial is
        asked after it; the one running finishes).

        ``objective(trial)`` returns a number (the first objective's value), a dict of
        metrics (every objective's among them) or a sequence of numbers (one per objective).
        :class:`TrialPruned` (or Optuna's) ends the trial as pruned; :class:`TrialFailed` fails
        it with its message; any other exception fails it with ``"Type: message"`` and is
        raised again unless it is an instance of ``catch``. A study's pruner stopping the
        trial (:meth:`ExternalTrial.should_prune`) ends it as pruned, whatever it returns.
        When all ``parallelism`` trials are out (429), it waits the Retry-After and asks again.

        Returns:
            The outcome of each trial evaluated, in order; ``stop_reason`` says why it
            returned. ``callbacks`` are called with each outcome as it comes.
        """
        kind = ((self.get("spec") or {}).get("task") or {}).get("kind")
        if kind not in (None, "external"):
            raise ValueError(f"study {self.id}'s task is {kind}: its trials run on the cluster")
        deadline = None if timeout is None else time.monotonic() + timeout
        outcomes: list[Outcome] = []
        self.stop_reason = f"{n_trials} trial{'' if n_trials == 1 else 's'} evaluated"
        while n_trials is None or len(outcomes) < n_trials:
            asked = self._ask(deadline)
            if asked is None:
                break
            outcome = self._evaluate(
                ExternalTrial(self.client, self.id, asked, self.objectives), objective, catch
            )
            outcomes.append(outcome)
            for callback in callbacks:
                callback(outcome)
        return outcomes

    def _ask(self, deadline: float | None) -> Asked | None:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                self.stop_reason = "timeout"
                return None
            try:
                return self.client.ask(self.id)
            except ApiError as exc:
                if exc.status == 409:
                    self.stop_reason = str(exc.detail)  # the service's: why nothing is left
                    return None
                if exc.status != 429:
                    raise
                wait = 1.0 if exc.retry_after is None else exc.retry_after
                if deadline is not None and time.monotonic() + wait >= deadline:
                    self.stop_reason = "timeout"
                    return None
                log.info("study %d: %s; asking again in %gs", self.id, exc.detail, wait)
                time.sleep(wait)

    def _evaluate(self, trial: ExternalTrial, objective: Objective, catch: Catch) -> Outcome:
        try:
            with _Heartbeat(trial):
                result = objective(trial)
            if trial.lost is not None:
                return _outcome(trial, "lost", trial.lost)
            if trial.pruned_by_service is not None:
                return _outcome(trial, "pruned", trial.pruned_by_service)
            metrics = as_metrics(result, trial.objectives, "the objective's result")
            missing = [m for m in trial.objectives if m not in metrics]
            if missing:
                raise ValueError(f"the objective's result has no {', '.join(missing)}")
            return self._tell(trial, "complete", metrics=metrics)
        except BaseException as exc:
            outcome = self._failed(trial, exc)
            if isinstance(exc, (LeaseLost, TrialFailed, *catch)) or _is_pruned(exc):
                return outcome
            raise

    def _failed(self, trial: ExternalTrial, exc: BaseException) -> Outcome:
        """The outcome of a trial whose objective (or its telling) raised ``exc``."""
        if trial.lost is not None:
            return _outcome(trial, "lost", trial.lost)
        if trial.pruned_by_service is not None:
            return _outcome(trial, "pruned", trial.pruned_by_service)
        if _is_pruned(exc):
            return self._tell(trial, "pruned", reason=str(exc) or None)
        reason = str(exc) if isinstance(exc, TrialFailed) else f"{type(exc).__name__}: {exc}"
        return self._tell(trial, "fail", reason=reason)

    def _tell(
        self,
        trial: ExternalTrial,
        state: TellState,
        reason: str | None = None,
        metrics: Metrics | None = None,
    ) -> Outcome:
        """Tell the trial's end; a 409 (the service ended the trial first) makes it ``lost``.
        Unreachable: two more tries, a second and then two apart."""
        for wait in (1.0, 2.0, None):
            try:
                sent = None if reason is None else reason[:MAX_REASON]
                self.client.tell(self.id, trial.number, trial.lease, state, metrics, sent)
                return _outcome(trial, state, reason, metrics)
            except Unreachable:
                if wait is None:
                    raise
                time.sleep(wait)
            except ApiError as exc:
                if exc.status not in (404, 409):
                    raise
                log.warning("trial %d: the service ended it first: %s", trial.number, exc.detail)
                return _outcome(trial, "lost", f"the service ended it first: {exc.detail}")
        raise AssertionError("not reached")


def _outcome(
    trial: ExternalTrial, state: OutcomeState, reason: str | None, metrics: Metrics | None = None
) -> Outcome:
    told = trial.last_metrics if metrics is None else metrics
    return Outcome(trial.number, state, trial.params, told, trial.last_step, reason)
