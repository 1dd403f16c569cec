"""A study's live events, read from the database: the truth, whichever process runs the
scheduler (embedded, or ``tuneforge scheduler`` on a cluster).

A :class:`StudyWatcher` polls the study's row and Optuna's ``trials`` table cheaply: each poll
reads only the trials it has not seen and those it last saw unfinished, so a study with
thousands of finished trials costs the same as a new one. Its first poll is the study so far
(the study, then every trial in number order): a client that connects mid-study sees every
trial's completion, earlier ones included.
"""

from dataclasses import dataclass, field
from typing import Any

from optuna.storages import RDBStorage
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session, sessionmaker

from service.orm import StudyRow
from service.schemas import StudyProgress
from service.trial_queries import TRIAL_STATES, trials_by_id
from service.views import directions, trial_public

FINISHED = frozenset({"completed", "failed", "stopped"})
_UNFINISHED = frozenset({"RUNNING", "WAITING"})
# A finished study's trials are told before its status is written; should one still show
# RUNNING (a scheduler that died), the stream ends after this many polls anyway.
_END_GRACE_POLLS = 10

_CHANGED_TRIALS = text(
    "SELECT trial_id, state FROM trials WHERE study_id = :sid "
    "AND (trial_id > :newest OR trial_id IN :open) ORDER BY number"
).bindparams(bindparam("open", expanding=True))
_LATEST_EPOCHS = text(
    "SELECT v.trial_id, v.step, v.intermediate_value FROM trial_intermediate_values v "
    "WHERE v.trial_id IN :open AND v.step = (SELECT MAX(w.step) FROM trial_intermediate_values w "
    "WHERE w.trial_id = v.trial_id)"
).bindparams(bindparam("open", expanding=True))


@dataclass(frozen=True)
class StudyEvent:
    """``kind``: ``study`` (status, counts, best value), ``trial`` (a trial appeared or
    changed state: the trial as ``GET .../trials`` shows it), ``epoch`` (a running trial's
    newest objective value) or ``end`` (the study finished: its final state)."""

    kind: str
    data: dict[str, Any]


@dataclass
class _Seen:
    state: str
    number: int
    epoch: int = 0


@dataclass
class StudyWatcher:
    """Turns a study's changes in the database into events, one :meth:`poll` at a time."""

    sessions: sessionmaker[Session]
    storage: RDBStorage
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
            try:
                self._optuna_id = self.storage.get_study_id_from_name(row.optuna_study_name)
            except KeyError:
                return []
        changed = session.execute(
            _CHANGED_TRIALS,
            {"sid": self._optuna_id, "newest": self._newest, "open": self._open() or [-1]},
        ).all()
        dirs = directions(row.spec)
        sign = 1.0 if dirs[0] == "maximize" else -1.0
        events = []
        to_read = []
        for trial_id, state in changed:
            seen = self._trials.get(trial_id)
            self._newest = max(self._newest, trial_id)
            if seen is None or seen.state != state:
                to_read.append(trial_id)
        # Batched: a client joining a study of 10,000 trials gets them in a few queries.
        for frozen in trials_by_id(session, sorted(to_read)):
            trial = trial_public(frozen)
            seen = self._trials.get(frozen._trial_id)
            self._trials[frozen._trial_id] = _Seen(
                trial.state, trial.number, seen.epoch if seen else 0
            )
            better = self._best is None or sign * (trial.value or 0) > sign * self._best
            if len(dirs) == 1 and trial.value is not None and better:
                self._best = trial.value
            events.append(StudyEvent("trial", trial.model_dump(mode="json")))
        return events

    def _epoch_events(self, session: Session) -> list[StudyEvent]:
        running = [tid for tid, seen in self._trials.items() if seen.state == "RUNNING"]
        if not running:
            return []
        events = []
        for trial_id, step, value in session.execute(_LATEST_EPOCHS, {"open": running}):
            seen = self._trials[trial_id]
            if step > seen.epoch:
                seen.epoch = step
                data = {"number": seen.number, "epoch": step, "value": value}
                events.append(StudyEvent("epoch", data))
        return events

    def _study(self, row: StudyRow) -> dict[str, Any]:
        counts = dict.fromkeys(TRIAL_STATES, 0)
        for seen in self._trials.values():
            counts[seen.state] += 1
        return StudyProgress(
            id=row.id,
            name=row.name,
            status=row.status,
            status_reason=row.status_reason,
            trial_counts=counts,
            best_value=self._best,
            started_at=row.started_at,
            finished_at=row.finished_at,
        ).model_dump(mode="json")
