"""Scheduler replicas (issue 15): a study's lease, its takeover, and the fence on every write.

Each step is played out with sessions on one database (SQLite and PostgreSQL). Replica A takes
a study, its lease expires, replica B takes it over: from then on every write A tries (a trial's
result through Optuna, a user attribute, a new trial, the study's status) raises LeaseLost and
changes nothing. The same with real processes: ``tests/e2e/test_replicas.py``.
"""

import time
from collections.abc import Iterator

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from service.store import crud, leases
from service.store.leases import Lease, LeaseLost, fenced_storage
from service.store.orm import StudyRow
from tests.service.conftest import Db
from tests.service.store.test_conditional_updates import SPEC

A, B = "host-a:1:aaaa", "host-b:2:bbbb"


@pytest.fixture
def study_id(db: Db) -> Iterator[int]:
    with db.sessions() as session:
        yield crud.create_study(session, db.storage, SPEC).id


def _row(db: Db, study_id: int) -> StudyRow:
    with db.sessions() as s:
        return crud.get_study(s, study_id)


def _take(db: Db, study_id: int, owner: str, lease_s: float = 30.0) -> Lease | None:
    with db.sessions() as s:
        return leases.claim(s, crud.get_study(s, study_id), owner, lease_s)


def _expire(db: Db, study_id: int) -> None:
    with db.sessions() as s:
        s.get(StudyRow, study_id).lease_until = time.time() - 1  # type: ignore[union-attr]
        s.commit()


def test_a_held_study_cannot_be_taken_until_its_lease_expires(db: Db, study_id: int) -> None:
    first = _take(db, study_id, A)
    assert first is not None and first.token == 1
    assert leases.held_by_another(_row(db, study_id), B)
    assert _take(db, study_id, B) is None  # A holds it
    _expire(db, study_id)
    assert not leases.held_by_another(_row(db, study_id), B)
    second = _take(db, study_id, B)
    assert second is not None and second.token == 2  # a new owner, a new token
    row = _row(db, study_id)
    assert (row.owner, row.fence) == (B, 2)


def test_two_replicas_racing_for_one_study_one_wins(db: Db, study_id: int) -> None:
    with db.sessions() as sa, db.sessions() as sb:
        row_a, row_b = crud.get_study(sa, study_id), crud.get_study(sb, study_id)
        won = [leases.claim(sa, row_a, A, 30), leases.claim(sb, row_b, B, 30)]
    assert [lease is not None for lease in won] == [True, False]
    assert _row(db, study_id).owner == A


def test_renewal_keeps_a_lease_and_finds_a_lost_one(db: Db, study_id: int) -> None:
    lease = _take(db, study_id, A, lease_s=5)
    assert lease is not None
    before = _row(db, study_id).lease_until
    with db.sessions() as s:
        assert leases.renew(s, [lease], 60) == []
    after = _row(db, study_id).lease_until
    assert before is not None and after is not None and after > before + 50
    _expire(db, study_id)
    assert _take(db, study_id, B) is not None
    with db.sessions() as s:
        assert leases.renew(s, [lease], 60) == [lease]
    assert lease.lost
    assert _row(db, study_id).owner == B  # A's renewal changed nothing


def test_a_released_study_is_taken_at_once(db: Db, study_id: int) -> None:
    lease = _take(db, study_id, A)
    assert lease is not None
    with db.sessions() as s:
        leases.release(s, lease)
    assert _take(db, study_id, B) is not None


def test_a_stale_owner_writes_nothing_to_the_study(db: Db, study_id: int) -> None:
    lease_a = _take(db, study_id, A)
    assert lease_a is not None
    name = _row(db, study_id).optuna_study_name
    storage_a = fenced_storage(db.storage, lease_a)
    try:
        study_a = optuna.load_study(study_name=name, storage=storage_a)
        trial = study_a.ask()  # while A holds the lease, its writes land
        trial.report(0.5, step=1)
        trial.set_user_attr("curve", [{"epoch": 1, "value": 0.5}])

        _expire(db, study_id)
        lease_b = _take(db, study_id, B)  # B takes the study over
        assert lease_b is not None

        for write in (
            lambda: trial.report(0.4, step=2),
            lambda: trial.set_user_attr("curve", []),
            lambda: study_a.tell(trial, 0.1),
            lambda: study_a.ask(),
        ):
            with pytest.raises(LeaseLost):
                write()
        with db.sessions() as s, pytest.raises(LeaseLost):
            crud.mark_finished(s, study_id, crud.StudyStatus.COMPLETED, "stale", lease_a)

        study = optuna.load_study(study_name=name, storage=db.storage)
        (only,) = study.get_trials()
        assert only.state == TrialState.RUNNING  # not told by A
        assert only.intermediate_values == {1: 0.5}
        assert only.user_attrs["curve"] == [{"epoch": 1, "value": 0.5}]
        assert _row(db, study_id).status == "pending"

        storage_b = fenced_storage(db.storage, lease_b)  # the new owner's writes land
        try:
            study_b = optuna.load_study(study_name=name, storage=storage_b)
            study_b.tell(only.number, 0.2)
            with db.sessions() as s:
                crud.mark_finished(s, study_id, crud.StudyStatus.COMPLETED, "done", lease_b)
        finally:
            storage_b.remove_session()
        assert study.get_trials()[0].value == 0.2
        assert _row(db, study_id).status == "completed"
    finally:
        storage_a.remove_session()


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_write_left_open_by_a_paused_owner_holds_up_no_takeover(
    db: Db, study_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica paused in the middle of a fenced write keeps the study's row locked: a claim
    gives up on the lock within a second (the study is tried again next round), and the
    database ends the paused transaction after IDLE_IN_TRANSACTION_S, which frees the row."""
    monkeypatch.setattr(leases, "IDLE_IN_TRANSACTION_S", 4.0)
    lease_a = _take(db, study_id, A)
    assert lease_a is not None
    _expire(db, study_id)
    storage_a = fenced_storage(db.storage, lease_a)
    with storage_a.engine.connect() as paused:
        # A's write: its fence check locks the row (FOR SHARE) until the commit, which never
        # comes while A is paused.
        paused.execute(text("UPDATE studies SET study_name = study_name WHERE 1 = 0"))
        assert paused.scalar(text("SHOW idle_in_transaction_session_timeout")) == "4s"
        started = time.monotonic()
        assert _take(db, study_id, B) is None  # the row is locked: not taken, and not stuck
        assert time.monotonic() - started < 3
        time.sleep(4.5)  # the database ends A's transaction
        lease_b = _take(db, study_id, B)
        assert lease_b is not None and lease_b.token == lease_a.token + 1
        with pytest.raises(DBAPIError):
            paused.execute(text("SELECT 1"))  # A's connection was closed under it


def test_the_replicas_share_the_studies(db: Db) -> None:
    with db.sessions() as s:
        assert leases.heartbeat(s, A, 30, time.time()) == 1
        assert leases.heartbeat(s, B, 30, time.time()) == 2
        leases.leave(s, A)
        assert leases.heartbeat(s, B, 30, time.time()) == 1
    assert [leases.fair_share(n, 2) for n in (0, 1, 5, 6)] == [1, 1, 3, 3]
