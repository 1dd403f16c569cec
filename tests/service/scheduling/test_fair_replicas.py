"""Fair share across scheduler replicas (issue 15): a replica counts the trials the others have
in flight, against the cluster's room and in their tenants' shares, read from the database (on
SQLite and PostgreSQL)."""

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


def test_a_replica_counts_the_trials_other_live_replicas_have_in_flight(db: Db) -> None:
    _study(db, "b-elsewhere", "b", OTHER, running=2, cpu=0.5)
    _study(db, "a-elsewhere", "a", OTHER, running=1, cpu=2.0)
    _study(db, "a-mine", "a", ME, running=3)  # its own: the runs count those
    dead = _study(db, "b-dead-owner", "b", OTHER, running=4)
    with db.sessions() as s:  # the replica holding it stopped renewing: nobody runs it
        row = s.get(StudyRow, dead)
        assert row is not None
        row.lease_until = time.time() - 1
        s.commit()
    elsewhere = _seen(db).elsewhere
    assert elsewhere.in_flight == {"b": 2, "a": 1}
    assert elsewhere.held == Room(cpu=2 * 0.5 + 1 * 2.0, gpu=0.0)


def test_no_other_replica_nothing_elsewhere(db: Db) -> None:
    _study(db, "a-mine", "a", ME, running=2)
    elsewhere = _seen(db).elsewhere
    assert (elsewhere.in_flight, elsewhere.held) == ({}, Room(0.0, 0.0))


def test_trials_elsewhere_count_in_their_tenant_s_share_and_cap() -> None:
    mine = [Demand(1, "a", 1.0, 0.0, 0, 4, 4), Demand(2, "b", 1.0, 0.0, 0, 4, 4)]
    # Another replica runs three of b's trials: a gets the free slots until it has as many.
    assert allocate(mine, Room(3.0, 0.0), {}, {}, {"b": 3}) == {1: 3}
    assert allocate(mine, Room(5.0, 0.0), {}, {}, {"b": 3}) == {1: 4, 2: 1}
    # b's quota of 4 trials in flight counts the ones elsewhere.
    assert allocate(mine, Room(8.0, 0.0), {"b": 4}, {}, {"b": 3}) == {1: 4, 2: 1}
