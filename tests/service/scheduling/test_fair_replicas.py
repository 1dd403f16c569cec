"""Fair share across scheduler replicas (issue 15): a replica reads the studies the other live
replicas hold (their trials in flight, their demand) from the database (on SQLite and
PostgreSQL) and shares the cluster's room out over every study, leaving the others' grants to
them."""

import dataclasses
import time

import optuna

from search.spec import Resources
from service.scheduling.fair import Demand, FairShare, Room, allocate
from service.store import crud, leases
from service.store.orm import StudyRow
from tests.service.conftest import Db
from tests.service.store.test_conditional_updates import SPEC

ME, OTHER = "host-a:1:aaaa", "host-b:2:bbbb"


def _study(db: Db, name: str, tenant: str, owner: str, running: int, cpu: float = 1.0) -> int:
    """A study of ``tenant`` held by ``owner`` with ``running`` trials in flight."""
    spec = dataclasses.replace(SPEC, name=name, resources=Resources(cpu=cpu))
    with db.sessions() as s:
        row = crud.create_study(s, db.storage, spec, tenant=tenant)
        assert leases.claim(s, row, owner, 30.0) is not None
        study = optuna.load_study(study_name=row.optuna_study_name, storage=db.storage)
        for _ in range(running):
            study.ask()
        return row.id


def _seen(db: Db) -> FairShare:
    fair = FairShare(default_cap=100)
    with db.sessions() as s:
        fair.see_elsewhere(s, crud.active_studies(s), ME)
    return fair


def test_a_replica_sees_the_studies_other_live_replicas_hold(db: Db) -> None:
    b_id = _study(db, "b-elsewhere", "b", OTHER, running=2, cpu=0.5)
    a_id = _study(db, "a-elsewhere", "a", OTHER, running=1, cpu=2.0)
    _study(db, "a-mine", "a", ME, running=3)  # its own: its runs count those
    dead = _study(db, "b-dead-owner", "b", OTHER, running=4)
    with db.sessions() as s:  # the replica holding it stopped renewing: nobody runs it
        row = s.get(StudyRow, dead)
        assert row is not None
        row.lease_until = time.time() - 1
        s.commit()
    seen = {d.key: d for d in _seen(db).elsewhere}
    assert set(seen) == {a_id, b_id}
    # SPEC's parallelism is 1: a study with a trial in flight wants no more.
    assert seen[b_id] == Demand(b_id, "b", 0.5, 0.0, 2, wanted=0, parallelism=1, elsewhere=True)
    assert seen[a_id] == Demand(a_id, "a", 2.0, 0.0, 1, wanted=0, parallelism=1, elsewhere=True)


def test_a_stopped_or_idle_study_elsewhere_is_seen_with_its_demand(db: Db) -> None:
    idle = _study(db, "b-idle", "b", OTHER, running=0)
    stopping = _study(db, "b-stopping", "b", OTHER, running=0)
    with db.sessions() as s:
        row = s.get(StudyRow, stopping)
        assert row is not None
        row.stop_requested = True
        s.commit()
    seen = {d.key: d for d in _seen(db).elsewhere}
    assert (seen[idle].in_flight, seen[idle].wanted) == (0, 1)
    assert seen[stopping].wanted == 0


def test_no_other_replica_nothing_elsewhere(db: Db) -> None:
    _study(db, "a-mine", "a", ME, running=2)
    assert _seen(db).elsewhere == []


def test_the_room_goes_to_the_tenant_behind_even_when_another_replica_holds_its_study() -> None:
    # This replica holds only tenant a's studies; another holds b's, which waits with none in
    # flight while a has one: the free slot is left for b, not taken for a.
    mine = [Demand(1, "a", 1.0, 0.0, 1, 3, 4)]
    theirs = [Demand(2, "b", 1.0, 0.0, 0, 1, 1, elsewhere=True)]
    granted = allocate(mine + theirs, Room(1.0, 0.0), {}, {})
    assert granted == {2: 1}
    # Within a tenant, this replica's own study goes first (it starts at once; a grant to
    # another replica's study waits for that replica's next pass).
    both_b = [Demand(1, "b", 1.0, 0.0, 0, 1, 1, elsewhere=True), Demand(5, "b", 1.0, 0.0, 0, 1, 1)]
    assert allocate(both_b, Room(1.0, 0.0), {}, {}) == {5: 1}
    # Trials elsewhere count in their tenant's share and against its quota.
    busy_b = [Demand(2, "b", 1.0, 0.0, 3, 4, 8, elsewhere=True)]
    mine = [Demand(1, "a", 1.0, 0.0, 0, 4, 4)]
    assert allocate(mine + busy_b, Room(3.0, 0.0), {}, {}) == {1: 3}
    assert allocate(mine + busy_b, Room(8.0, 0.0), {"b": 4}, {}) == {1: 4, 2: 1}
