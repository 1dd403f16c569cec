"""An external study's run in the scheduler: it trains nothing; it fails the trials whose
lease expired and ends the study when its budget is spent.

The API asks and tells (:mod:`search.external.asking`, :mod:`search.external.telling`); the
scheduler's pass over its runs calls :meth:`ExternalRun.advance`, which reads the study's
unfinished trials (one query) at most every ``CHECK_EVERY_S``. A scheduler restart interrupts
no external trial: its client holds it, and the next owner's run goes on where this one was.
"""

import time
from dataclasses import replace
from typing import ClassVar

import optuna
from optuna.trial import TrialState

from search import attrs, optuna_compat
from search.algorithm import Env, Outcome, Run
from search.loop.lease import lease_of
from search.loop.outcomes import INTERRUPTED, count_trials, ended, reaches
from search.spec import ExternalTask, StudySpec, StudyStatus

CHECK_EVERY_S = 0.5


class ExternalRun(Run):
    """Leases and budget of one external study (see the module docstring)."""

    label: ClassVar[str] = "loop"

    def __init__(self, spec: StudySpec, study: optuna.Study, env: Env) -> None:
        assert isinstance(spec.task, ExternalTask)
        self.spec = spec
        self.study = study
        self.outcome: Outcome | None = None
        self._started_at = env.started_at
        self._draining = False
        self._checked = 0.0

    @property
    def lease_s(self) -> float:
        task = self.spec.task
        assert isinstance(task, ExternalTask)
        return task.lease_s

    def update(self, spec: StudySpec) -> None:
        self.spec = replace(self.spec, budget=spec.budget, parallelism=spec.parallelism)

    def advance(self) -> None:
        now = time.monotonic()
        if self.outcome is not None or now - self._checked < CHECK_EVERY_S:
            return
        self._checked = now
        every = self.study.get_trials(deepcopy=False)
        expired = False
        for frozen in every:
            if frozen.state == TrialState.RUNNING:
                lease = lease_of(frozen, self.lease_s)
                if lease.expires < time.time():
                    reason = f"lease expired: no word from its client for {lease.lease_s:g} s"
                    self._fail(optuna_compat.trial_id_of(frozen), reason)
                    expired = True
        # Read again only when this pass failed a trial: one query a pass otherwise.
        self._check_end(self.study.get_trials(deepcopy=False) if expired else every)

    def _fail(self, trial_id: int, reason: str, interrupted: bool = False) -> None:
        trial = optuna_compat.trial_of(self.study, trial_id)
        extra = {INTERRUPTED: True} if interrupted else {}
        try:
            attrs.write(trial, {"fail_reason": reason, **extra})
            optuna_compat.tell(self.study, trial, state=TrialState.FAIL)
        except RuntimeError:  # told by its client meanwhile (UpdateFinishedTrialError)
            pass

    def _check_end(self, every: list[optuna.trial.FrozenTrial]) -> None:
        n_trials, n_waiting, n_failed = count_trials(every)
        out = sum(t.state == TrialState.RUNNING for t in every)
        budget = self.spec.budget
        if budget.max_failed_trials is not None and n_failed >= budget.max_failed_trials:
            reason = f"max_failed_trials reached: {n_failed} trials failed"
            self.interrupt(f"study failed: {reason}")
            self.outcome = Outcome(StudyStatus.FAILED, reason)
            return
        target = budget.target_value
        if target is not None:
            direction = self.spec.objective.direction
            for t in every:
                done = t.state == TrialState.COMPLETE and t.value is not None
                if done and t.value is not None and reaches(t.value, target, direction):
                    reason = f"target value {target:g} reached by trial {t.number} ({t.value:g})"
                    self.interrupt(f"study ended: {reason}")
                    self.outcome = Outcome(StudyStatus.COMPLETED, reason)
                    return
        spent = n_trials >= budget.max_trials or self._timed_out() or self._draining
        if spent and out == 0 and (n_waiting == 0 or self._draining or self._timed_out()):
            failures = [t for t in every if t.state == TrialState.FAIL]
            last = str(failures[-1].user_attrs.get("fail_reason", "")) if failures else ""
            self.outcome = ended(
                self._draining, (n_trials, n_failed, last), self._timed_out(), None
            )

    def _timed_out(self) -> bool:
        timeout = self.spec.budget.timeout_s
        return timeout is not None and time.time() - self._started_at >= timeout

    def interrupt(self, reason: str) -> None:
        """Fail every trial out, each with ``reason`` (not the study's failure)."""
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self._fail(optuna_compat.trial_id_of(frozen), reason, interrupted=True)

    def stop(self, reason: str) -> None:
        self.interrupt(reason)
        self.outcome = Outcome(StudyStatus.STOPPED, reason)

    def drain(self) -> None:
        self._draining = True
        self._checked = 0.0

    def suspend(self) -> None:
        """Nothing to leave: the trials out stay with their clients."""
