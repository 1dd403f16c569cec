"""No lost updates (issue 15): a request changes a study only as it read it.

Each race is played out step by step with two sessions on one database (SQLite and
PostgreSQL): request A reads the study, request B changes it and commits, then A writes. A's
write must answer 409 and leave B's change whole. The same races between real concurrent
requests are in ``tests/e2e/test_concurrency.py``.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from search.datadir import DataDir
from search.spec import (
    AlgorithmSpec,
    Budget,
    FunctionTask,
    Objective,
    ParamSpec,
    Resources,
    StudySpec,
    StudyStatus,
)
from service.errors import Conflict
from service.store import crud
from service.store.orm import StudyRow
from tests.service.conftest import Db

SPEC = StudySpec(
    name="race",
    objectives=(Objective("value", "minimize"),),
    algorithm=AlgorithmSpec("random", {}),
    search_space=(ParamSpec("x1", "float", low=-5.0, high=10.0),),
    budget=Budget(max_trials=10, max_failed_trials=None),
    parallelism=1,
    resources=Resources(cpu=1),
    task=FunctionTask("branin", {"x2": 1.0}),
)


@pytest.fixture
def study_id(db: Db) -> Iterator[int]:
    with db.sessions() as session:
        yield crud.create_study(session, db.storage, SPEC).id


def _read(db: Db, study_id: int) -> tuple[Session, StudyRow]:
    session = db.sessions()
    return session, crud.get_study(session, study_id)


def test_a_patch_on_a_study_patched_meanwhile_is_409_and_the_other_change_stays(
    db: Db, study_id: int
) -> None:
    a, row_a = _read(db, study_id)
    with db.sessions() as b:
        crud.patch_study(b, crud.get_study(b, study_id), parallelism=3)
    with pytest.raises(Conflict, match="changed while this request ran"):
        crud.patch_study(a, row_a, budget={"max_trials": 50})
    a.close()
    with db.sessions() as check:
        spec = crud.study_spec(crud.get_study(check, study_id))
    assert (spec.parallelism, spec.budget.max_trials) == (3, 10)  # B's change, whole


def test_patches_one_after_the_other_both_apply(db: Db, study_id: int) -> None:
    with db.sessions() as a:
        crud.patch_study(a, crud.get_study(a, study_id), parallelism=3)
    with db.sessions() as b:
        crud.patch_study(b, crud.get_study(b, study_id), budget={"max_trials": 50})
    with db.sessions() as check:
        spec = crud.study_spec(crud.get_study(check, study_id))
    assert (spec.parallelism, spec.budget.max_trials) == (3, 50)


def test_a_delete_racing_a_patch_that_resumed_the_study_is_409_and_deletes_nothing(
    db: Db, study_id: int, tmp_path: Path
) -> None:
    with db.sessions() as s:
        crud.mark_finished(s, study_id, StudyStatus.COMPLETED, "max_trials reached")
    a, row_a = _read(db, study_id)  # A sees a finished study: it may delete it
    with db.sessions() as b:  # B extends the budget: the study resumes
        resumed = crud.patch_study(b, crud.get_study(b, study_id), budget={"max_trials": 20})
        assert resumed.status == StudyStatus.PENDING
        optuna_name = resumed.optuna_study_name
    with pytest.raises(Conflict, match="changed while this request ran"):
        crud.delete_study(a, db.storage, DataDir(tmp_path), row_a)
    a.close()
    with db.sessions() as check:
        row = crud.get_study(check, study_id)
        assert row.status == StudyStatus.PENDING
    assert optuna_name in {s.study_name for s in db.storage.get_all_studies()}


def test_a_stop_on_a_study_the_scheduler_finished_meanwhile_answers_it_finished(
    db: Db, study_id: int
) -> None:
    a, row_a = _read(db, study_id)
    with db.sessions() as s:  # the scheduler's write bumps the version
        crud.mark_finished(s, study_id, StudyStatus.COMPLETED, "max_trials reached")
    answered = crud.request_stop(a, row_a)
    assert (answered.status, answered.stop_requested) == (StudyStatus.COMPLETED, False)
    a.close()
    with db.sessions() as check:
        row = crud.get_study(check, study_id)
        assert (row.status, row.stop_requested) == (StudyStatus.COMPLETED, False)


def test_a_stop_on_a_study_the_scheduler_started_meanwhile_applies(db: Db, study_id: int) -> None:
    """The race CI met: PATCH resumed the study, the scheduler marked it running, then the
    stop (read while it was pending) arrived. A stop is not a read-modify-write: it applies."""
    a, row_a = _read(db, study_id)
    with db.sessions() as s:
        crud.mark_running(s, study_id, crud.utcnow())
    stopped = crud.request_stop(a, row_a, drain=True)
    assert (stopped.status, stopped.stop_requested, stopped.stop_drain) == (
        StudyStatus.RUNNING,
        True,
        True,
    )
    a.close()
    with db.sessions() as b:  # and a PATCH that read the study before the stop is a 409
        row_b = crud.get_study(b, study_id)
        with db.sessions() as c:
            crud.request_stop(c, crud.get_study(c, study_id))
        with pytest.raises(Conflict):
            crud.patch_study(b, row_b, parallelism=2)
