"""A study's live events, read from the database: the truth, whichever process runs the
scheduler (embedded, or ``tuneforge scheduler`` on a cluster).

A :class:`StudyWatcher` polls the study's row and Optuna's ``trials`` table cheaply: each poll
reads only the trials it has not seen and those it last saw unfinished, so a study with
thousands of finished trials costs the same as a new one. Its first poll is the study so far
(the study, then every trial in number order): a client that connects mid-study sees every
trial's completion, earlier ones included. The API turns the events into its JSON
(``service/api/routes/events.py``).
"""

from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session, sessionmaker

from search.spec import FINISHED
from service.store import optuna_sql
from service.store.crud import study_spec
from service.store.orm import StudyRow

_UNFINISHED = frozenset({"RUNNING", "WAITING"})
# A finished study's trials are told before its status is written; should one still show
# RUNNING (a scheduler that died), the stream ends after this many polls anyway.
_END_GRACE_POLLS = 10


@dataclass(frozen=True)
class StudyEvent:
    """``kind``: ``study`` (status, counts, best value: a dict of the study's fields),
    ``trial`` (a trial appeared or changed state: the ``FrozenTrial``), ``epoch`` (a running
    trial's newest objective value: number, epoch, value) or ``end`` (the study finished:
    its final fields, or ``{"id", "status": "deleted"}``)."""

    kind: str
    data: Any


@dataclass
class _Seen:
    state: str
    number: int
    epoch: int = 0


@dataclass
class StudyWatcher:
    """Turns a study's changes in the database into events, one :meth:`poll` at a time."""

    sessions: sessionmaker[Session]
    study_id: int
    ended: bool = False
    _trials: dict[int, _Seen] = field(default_factory=dict)
    _newest: int = -1
    _optuna_id: int | None = None
    _best: float | None = None
    _last_study: dict[str, Any] | None = None
    _finished_polls: int = 0

    def poll(self) -> list[StudyEvent]:
        """The events since the last poll (the first: the study so far)."""
        if self.ended:
            return []
        with self.sessions() as session:
            row = session.get(StudyRow, self.study_id)
            if row is None:  # deleted meanwhile
                self.ended = True
                return [StudyEvent("end", {"id": self.study_id, "status": "deleted"})]
            events = self._trial_events(session, row)
            events += self._epoch_events(session)
            study = self._study(row)
        if study != self._last_study:
            events.insert(0, StudyEvent("study", study))
            self._last_study = study
        if row.status in FINISHED:
            self._finished_polls += 1
            if self._open() == [] or self._finished_polls > _END_GRACE_POLLS:
                self.ended = True
                events.append(StudyEvent("end", study))
        return events

    def _open(self) -> list[int]:
        return [tid for tid, seen in self._trials.items() if seen.state in _UNFINISHED]

    def _trial_events(self, session: Session, row: StudyRow) -> list[StudyEvent]:
        if self._optuna_id is None:
            self._optuna_id = optuna_sql.optuna_study_id(session, row.optuna_study_name)
            if self._optuna_id is None:
                return []
        changed = optuna_sql.changed_trials(session, self._optuna_id, self._newest, self._open())
        dirs = study_spec(row).directions
        sign = 1.0 if dirs[0] == "maximize" else -1.0
        to_read = []
        for trial_id, state in changed:
            seen = self._trials.get(trial_id)
            self._newest = max(self._newest, trial_id)
            if seen is None or seen.state != state:
                to_read.append(trial_id)
        events = []
        # Batched: a client joining a study of 10,000 trials gets them in a few queries.
        for frozen in optuna_sql.trials_by_id(session, sorted(to_read)):
            trial_id = frozen._trial_id
            seen = self._trials.get(trial_id)
            epoch = seen.epoch if seen else 0
            self._trials[trial_id] = _Seen(frozen.state.name, frozen.number, epoch)
            value = _value(frozen)
            better = self._best is None or sign * (value or 0) > sign * self._best
            if len(dirs) == 1 and value is not None and better:
                self._best = value
            events.append(StudyEvent("trial", frozen))
        return events

    def _epoch_events(self, session: Session) -> list[StudyEvent]:
        running = [tid for tid, seen in self._trials.items() if seen.state == "RUNNING"]
        if not running:
            return []
        events = []
        for trial_id, step, value in optuna_sql.latest_epochs(session, running):
            seen = self._trials[trial_id]
            if step > seen.epoch:
                seen.epoch = step
                data = {"number": seen.number, "epoch": step, "value": value}
                events.append(StudyEvent("epoch", data))
        return events

    def _study(self, row: StudyRow) -> dict[str, Any]:
        counts = dict.fromkeys(optuna_sql.TRIAL_STATES, 0)
        for seen in self._trials.values():
            counts[seen.state] += 1
        return {
            "id": row.id,
            "name": row.name,
            "status": row.status,
            "status_reason": row.status_reason,
            "trial_counts": counts,
            "best_value": self._best,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
        }


def _value(trial: FrozenTrial) -> float | None:
    """A completed trial's (first) objective value."""
    if trial.state == TrialState.COMPLETE and trial.values:
        return float(trial.values[0])
    return None
