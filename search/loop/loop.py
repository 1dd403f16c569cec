"""The sampler loop: ask/tell over Ray for one study, as a :class:`~search.algorithm.Run`.

``StudyLoop`` keeps ``parallelism`` trials of one Optuna study in flight as Ray streaming
tasks. It owns no thread: the scheduler calls :meth:`StudyLoop.advance` and
:func:`search.loop.wait_any` in its own loop, so one thread drives every running study.
Workers never touch the database: all Optuna writes happen here, in the scheduler's process.
What a trial runs is its trial kind's business (:mod:`search.trials`); the loop handles the
events every kind shares.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import optuna
import ray
from optuna.trial import FrozenTrial, TrialState

from search import attrs, optuna_artifacts, optuna_compat
from search.algorithm import Env, Outcome, Run
from search.artifacts import data_facts
from search.constraints import Feasibility
from search.loop.checkpoints import Checkpoints
from search.loop.finished import WHERE, Artifacts, record_finished
from search.loop.inflight import InFlight
from search.loop.outcomes import (
    INTERRUPTED,
    MAX_REASON,
    count_trials,
    ended,
    failure_reason,
    lost_worker,
    reaches,
)
from search.loop.pruning import batched_metric, decision_epochs, should_stop, told, trial_epochs
from search.space import suggest_all
from search.spec import StudySpec, StudyStatus, TrainTask
from search.trials import TrialKind
from search.trials.batching import run_batched
from search.trials.events import CheckpointSaved, EpochEnd, Event, Finished, Measured, Started
from search.trials.worker import run_trial

log = logging.getLogger(__name__)
_UNREAD_EVENTS = 16  # batches a trial may yield ahead of the loop (a dozen epochs at least)


class StudyLoop(Run):
    """Keeps one study's trials in flight until its budget is spent.

    Args:
        spec: the study.
        study: the Optuna study, loaded with the spec's sampler and pruner.
        env: the data directory, the data loader, the study's start, checkpoints, retries.
        kind: the trial kind every trial runs.
        trial_cap: the most trials the sampler can propose (a grid's size).
        trial_fn: the generator each Ray task runs (tests substitute failing ones).
        capped: the reason the study ends with once ``trial_cap`` trials ran.
    """

    label: ClassVar[str] = "loop"

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        env: Env,
        kind: TrialKind,
        trial_cap: int | None = None,
        trial_fn: Callable[..., Any] = run_trial,
        capped: str = "search space exhausted",
    ) -> None:
        self.spec = spec
        self.study = study
        self.kind = kind
        self.trial_cap = trial_cap
        self._capped = capped
        self._last_failure = ""
        self.outcome: Outcome | None = None
        self._started_at = env.started_at
        self._in_flight: dict[Any, InFlight] = {}
        self._trial_fn = trial_fn
        self._remote = ray.remote(run_batched).options(
            num_returns="streaming",
            num_cpus=spec.resources.cpu,
            num_gpus=spec.resources.gpu,
            max_retries=0,  # the loop retries lost trials itself, from their checkpoints
            # A trial whose events nobody reads (its scheduler hangs) pauses after a few
            # epochs instead of running on beside the run that its next scheduler resumes.
            _generator_backpressure_num_objects=_UNREAD_EVENTS,
        )
        name = study.study_name
        self._artifacts = Artifacts(
            env.data_dir.artifacts(name), optuna_artifacts.artifact_store(env.data_dir)
        )
        self._checkpoints = Checkpoints(env.data_dir.checkpoints(name) if kind.resumable else None)
        self._checkpoint_every = env.checkpoint_every if kind.resumable else 0
        self._max_retries = env.trial_retries
        self._draining = self._resumed = False
        self.data_ref: Any = None  # a trial kind without data has none
        self._feasibility = Feasibility(spec, None)
        if kind.needs_data:
            assert isinstance(spec.task, TrainTask), "only a training reads a dataset"
            dataset = env.load_data(spec.task.dataset)
            self._artifacts.data_facts = data_facts(dataset.info, spec.task.dataset.classes)
            self._feasibility = Feasibility(spec, dataset.info if kind.suggests else None)
            self.data_ref = ray.put(dataset)  # put once: every trial reads the object store
        self._n_trials = self._n_waiting = self._n_failed = 0
        self._batched = batched_metric(study, spec)  # intermediate values written with curves

    # -- the Run interface ----------------------------------------------------------------

    @property
    def n_in_flight(self) -> int:
        return len(self._in_flight)

    def waiting_on(self) -> list[Any]:
        return list(self._in_flight)

    def resume(self) -> None:
        """Trials left RUNNING (their scheduler stopped or died, and their Ray tasks with it)
        resume from their checkpoints and count once; one out of retries fails. One of a kind
        that cannot resume (a one-shot search) fails as interrupted, not counted: replaced."""
        reason = "interrupted: the scheduler restarted while the trial ran"
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if self.kind.resumable and self._resume(frozen, reason):
                continue
            trial = optuna_compat.trial_of(self.study, optuna_compat.trial_id_of(frozen))
            if not self.kind.resumable:
                attrs.write(trial, {"fail_reason": reason, INTERRUPTED: True})
            else:  # it used up its retries: a failure of the study's budget
                tries = len(attrs.trial_attr(frozen, "resumes", []))
                attrs.write(trial, {"fail_reason": f"{reason} (after {tries} retries)"})
            self.study.tell(frozen.number, state=TrialState.FAIL)
            self._checkpoints.drop(frozen.number)
        self._count()
        self._resumed = True

    def _count(self) -> None:
        counted = count_trials(self.study.get_trials(deepcopy=False))
        self._n_trials, self._n_waiting, self._n_failed = counted

    def update(self, spec: StudySpec) -> None:
        """Apply a budget extended (or cut), or a new parallelism, while the study runs."""
        self.spec = replace(self.spec, budget=spec.budget, parallelism=spec.parallelism)

    def advance(self) -> None:
        """Start trials until ``parallelism`` are in flight or the budget says stop; write the
        attributes of running trials that have waited ``CURVE_EVERY_S``."""
        if not self._resumed:
            self.resume()
        for running in self._in_flight.values():
            running.save(force=False)
        while self.outcome is None and len(self._in_flight) < self._cap() and self._may_start():
            self._start_trial()
        self._check_end()

    def _cap(self) -> int:
        parallelism = self.spec.parallelism
        return parallelism if self.limit is None else min(parallelism, self.limit)

    def wanted(self) -> int:
        if self.outcome is not None or not self._may_start():
            return 0
        room = self.spec.parallelism - len(self._in_flight)
        return max(0, min(room, self._max_trials() - self._n_trials))

    def _max_trials(self) -> int:
        cap = self.spec.budget.max_trials
        return cap if self.trial_cap is None else min(cap, self.trial_cap)

    def on_ready(self, ref: Any) -> None:
        """Consume the next batch of a trial's stream (call only when it is ready)."""
        running = self._in_flight.get(ref)
        if running is None:  # cancelled since it became ready (the study ended meanwhile)
            return
        try:
            batch: list[Event] = ray.get(next(ref))
        except StopIteration:
            self._fail(ref, running, "the trial ended without a result")
            return
        except Exception as exc:  # the trial's own failure, or its worker's
            handle = self._retry if lost_worker(exc) else self._fail
            handle(ref, running, failure_reason(exc))
            return
        for event in batch:  # unless an earlier event of the batch ended it (pruned, ...)
            if self._in_flight.get(ref) is running:
                self._on_event(ref, running, event)

    def _on_event(self, ref: Any, running: InFlight, event: Event) -> None:
        if isinstance(event, Started):  # written at once: where a trial runs shows as it starts
            running.set(**{key: getattr(event, key) for key in WHERE})
            running.save()
        elif isinstance(event, Measured):
            self._on_measured(ref, running, event)
        elif isinstance(event, EpochEnd):
            self._on_epoch(ref, running, event)
            self._check_end()
        elif isinstance(event, CheckpointSaved):
            self._on_checkpoint(running, event)
        elif isinstance(event, Finished):
            self._on_result(ref, running, event)
        else:
            self.kind.on_event(event, running, self.study)

    def stop(self, reason: str) -> None:
        """Cancel every trial in flight (each FAIL with ``reason``) and end the study."""
        self.interrupt(reason)
        self.outcome = Outcome(StudyStatus.STOPPED, reason)

    def drain(self) -> None:
        """Stop starting trials; the study ends (stopped) when those in flight finish."""
        self._draining = True

    def interrupt(self, reason: str) -> None:
        """Cancel every trial in flight, each FAIL with ``reason``, marked interrupted (cut
        short by a stop or a shutdown, not its own fault: a resumed study does not count it)."""
        for ref, running in list(self._in_flight.items()):
            ray.cancel(ref)
            running.set(fail_reason=reason, **{INTERRUPTED: True})
            running.save()
            optuna_compat.tell(self.study, running.trial, state=TrialState.FAIL)
            self._checkpoints.drop(running.trial.number)
        self._in_flight.clear()

    def suspend(self) -> None:
        """Cancel every trial in flight but leave it RUNNING, its curve and checkpoint saved:
        the next scheduler to open the study resumes it (the service is shutting down)."""
        for ref in self._in_flight:  # first: a save may fail (the study has another owner)
            ray.cancel(ref)
        in_flight = list(self._in_flight.values())
        self._in_flight.clear()
        for running in in_flight:
            running.save()

    # -- starting trials --------------------------------------------------------------------

    def _may_start(self) -> bool:
        if self._draining or self._n_trials >= self._max_trials():
            return False
        return not self._timed_out()

    def _timed_out(self) -> bool:
        timeout = self.spec.budget.timeout_s
        return timeout is not None and time.time() - self._started_at >= timeout

    def _check_end(self) -> None:
        if self.outcome is not None:
            return
        limit = self.spec.budget.max_failed_trials
        if limit is not None and self._n_failed >= limit:
            reason = f"max_failed_trials reached: {self._n_failed} trials failed"
            self.interrupt(f"study failed: {reason}")
            self.outcome = Outcome(StudyStatus.FAILED, reason)
        elif not self._in_flight and not self._may_start():
            capped = self.trial_cap is not None and self._n_trials >= self.trial_cap
            self.outcome = ended(
                self._draining,
                (self._n_trials, self._n_failed, self._last_failure),
                self._timed_out(),
                self._capped if capped else None,
            )

    def _ask(self) -> optuna.Trial:
        # Queued trials run first. While none is known, asking skips Optuna's look for them
        # (it rereads every unfinished trial): one count of that state instead.
        if self._n_waiting == 0:
            self._n_waiting = optuna_compat.n_waiting(self.study)
        if self._n_waiting > 0:
            self._n_waiting -= 1
            return self.study.ask()
        return optuna_compat.ask_new(self.study)

    def _start_trial(self) -> None:
        trial = self._ask()
        if self.kind.suggests:
            suggest_all(trial, self.spec.search_space)
        running = InFlight(trial, params=dict(trial.params), batched=self._batched)
        running.set(seed=self.spec.seed + trial.number, **self.kind.attrs(self.spec, trial.params))
        if not self._feasibility.rejects(running, self.study):  # 0 epochs on an infeasible one
            self._launch(running)
        self._n_trials += 1

    def _launch(self, running: InFlight, resume: bytes | None = None) -> None:
        """Start a trial's Ray task: from its start, or after the checkpoint ``resume``."""
        trial = running.trial
        payload = self.kind.payload(self.spec, trial.params, self._checkpoint_every, resume)
        seed = self.spec.seed + trial.number
        resources = self.spec.resources
        decides = decision_epochs(self.study.pruner, trial_epochs(self.spec, trial.params))
        args = (self._trial_fn, decides, payload, self.data_ref, seed, resources.cpu, resources.gpu)
        ref = self._remote.remote(*args)
        self._in_flight[ref] = running

    # -- checkpoints and resumption -----------------------------------------------------

    def _on_checkpoint(self, running: InFlight, event: CheckpointSaved) -> None:
        if self._checkpoints.folder is None:
            return
        # The curve up to the checkpoint is what a resume keeps: it reaches the database
        # before the file does, so a crash between the two never leaves a checkpoint whose
        # epochs are missing from the curve.
        running.save()
        self._checkpoints.write(running.trial.number, event.state)
        running.set(checkpoint_epoch=event.epoch)

    def _resume(self, frozen: FrozenTrial, reason: str) -> bool:
        """Start a trial again that was cut short (``reason``), after its newest checkpoint.

        Returns False, and leaves the trial alone, when it may not be retried any more.
        """
        resumes = list(attrs.trial_attr(frozen, "resumes", []))
        if len(resumes) >= self._max_retries:
            return False
        state, checkpoint_epoch = self._checkpoints.read(frozen.number)
        trial = optuna_compat.trial_of(self.study, optuna_compat.trial_id_of(frozen))
        curve = [c for c in attrs.trial_curve(frozen) if c["epoch"] <= checkpoint_epoch]
        # When it was started again: after the earlier run's end (tests check no two overlap).
        resumes.append(
            {"from_epoch": checkpoint_epoch, "reason": reason[:MAX_REASON], "at": time.time()}
        )
        attrs.write(trial, {"resumes": resumes, "curve": curve})
        running = InFlight(trial, curve=curve, curve_saved=len(curve), params=dict(frozen.params))
        running.batched = self._batched
        running.reported = max(frozen.intermediate_values, default=0)
        what = (self.spec.name, frozen.number, checkpoint_epoch, reason)
        log.info("study %s trial %d resumed after epoch %d: %s", *what)
        self._launch(running, state)
        return True

    def _retry(self, ref: Any, running: InFlight, reason: str) -> None:
        """A trial's worker or node died: resume the trial elsewhere, or fail it."""
        del self._in_flight[ref]
        running.save()
        frozen = optuna_compat.frozen(self.study, optuna_compat.trial_id_of(running.trial))
        if not self.kind.resumable or not self._resume(frozen, f"worker lost: {reason}"):
            tries = len(attrs.trial_attr(frozen, "resumes", []))
            self._record_failure(running, f"worker lost after {tries} retries: {reason}")
        self._check_end()

    # -- events -----------------------------------------------------------------------------

    def _on_measured(self, ref: Any, running: InFlight, event: Measured) -> None:
        """The trial timed its network before training: the pruner ranks it on that at every
        rung, and a constraint on it may end the trial here (its task stops by itself)."""
        running.notes["measured"] = dict(event.metrics)
        running.set(**event.metrics)  # kept for a resumed study's pruner
        if self._feasibility.rejects(running, self.study, event.metrics):
            del self._in_flight[ref]
            self._check_end()

    def _on_epoch(self, ref: Any, running: InFlight, event: EpochEnd) -> None:
        running.curve.append({"epoch": event.epoch, **event.metrics})
        running.save(force=False)
        stop = should_stop(self.study, self.spec, running, self._feasibility.info)
        if stop is not None:
            ray.cancel(ref)
            running.set(pruned_at_epoch=event.epoch, **stop)
            running.save()
            optuna_compat.tell(self.study, running.trial, state=TrialState.PRUNED)
            del self._in_flight[ref]
            self._checkpoints.drop(running.trial.number)

    def _on_result(self, ref: Any, running: InFlight, event: Finished) -> None:
        del self._in_flight[ref]  # the stream ends after its result; nothing more to read
        trial = running.trial
        values = [float(event.metrics[o.metric]) for o in self.spec.objectives]
        record_finished(running, event, self.spec, self._artifacts)
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            self._record_failure(running, f"non-finite objective value {bad[0]}")
            return
        feasible = self._feasibility.record(running, event.metrics)
        running.save()
        optuna_compat.tell(self.study, trial, values[0] if len(values) == 1 else values)
        told(self.study, trial.number, values, feasible)
        self._checkpoints.drop(trial.number)
        target = self.spec.budget.target_value
        if target is not None and reaches(values[0], target, self.spec.objective.direction):
            reason = f"target value {target:g} reached by trial {trial.number} ({values[0]:g})"
            self.interrupt(f"study ended: {reason}")
            self.outcome = Outcome(StudyStatus.COMPLETED, reason)
        self._check_end()

    def _fail(self, ref: Any, running: InFlight, reason: str) -> None:
        del self._in_flight[ref]
        self._record_failure(running, reason)
        self._check_end()

    def _record_failure(self, running: InFlight, reason: str) -> None:
        log.info("study %s trial %d failed: %s", self.spec.name, running.trial.number, reason)
        running.set(fail_reason=reason)
        running.save()
        optuna_compat.tell(self.study, running.trial, state=TrialState.FAIL)
        self._n_failed += 1
        self._last_failure = reason
        self._checkpoints.drop(running.trial.number)
