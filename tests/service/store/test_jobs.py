"""Jobs in the database: created by the API, claimed by exactly one scheduler replica,
finished only by their holder, taken again when their holder vanished."""

import time

from sqlalchemy import update

from service.store import jobs
from service.store.orm import JobRow
from tests.service.conftest import Db


def test_one_of_two_replicas_claims_a_job(db: Db) -> None:
    with db.sessions() as s:
        job = jobs.create_job(s, "acme", "preflight", {"points": 1})
    # Both replicas read the pending job, then both try to claim it.
    with db.sessions() as a, db.sessions() as b:
        seen_a = jobs.claimable(a, 10)
        seen_b = jobs.claimable(b, 10)
        assert [r.id for r in seen_a] == [r.id for r in seen_b] == [job.id]
        won = [jobs.claim(a, seen_a[0], "replica-a", 60), jobs.claim(b, seen_b[0], "replica-b", 60)]
    assert won == [True, False]
    with db.sessions() as s:
        row = jobs.get_job(s, job.id)
        assert (row.status, row.owner, row.attempts) == ("running", "replica-a", 1)
        assert jobs.claimable(s, 10) == []  # held, lease not expired


def test_only_the_holder_finishes_a_job(db: Db) -> None:
    with db.sessions() as s:
        job = jobs.create_job(s, "acme", "preflight", {})
        assert jobs.claim(s, jobs.claimable(s, 1)[0], "replica-a", 60)
        assert not jobs.finish(s, job.id, "replica-b", {"passed": True})
        assert jobs.finish(s, job.id, "replica-a", {"passed": True})
        row = jobs.get_job(s, job.id)
        assert (row.status, row.result, row.error) == ("done", {"passed": True}, None)
        assert not jobs.finish(s, job.id, "replica-a", error="twice")  # ended already


def test_a_job_whose_holder_vanished_is_claimed_again(db: Db) -> None:
    with db.sessions() as s:
        job = jobs.create_job(s, "acme", "ensemble", {"top_k": 5}, study_id=7)
        assert jobs.claim(s, jobs.claimable(s, 1)[0], "replica-a", 60)
        s.execute(update(JobRow).where(JobRow.id == job.id).values(lease_until=time.time() - 1))
        s.commit()
        again = jobs.claimable(s, 1)
        assert [r.id for r in again] == [job.id]
        assert jobs.claim(s, again[0], "replica-b", 60)
        row = jobs.get_job(s, job.id)
        assert (row.owner, row.attempts) == ("replica-b", 2)
        # The first holder's late result is refused.
        assert not jobs.finish(s, job.id, "replica-a", {"late": True})


def test_jobs_are_tenant_scoped_and_go_with_their_study(db: Db) -> None:
    import pytest

    from service.errors import NotFound

    with db.sessions() as s:
        job = jobs.create_job(s, "acme", "ensemble", {"top_k": 2}, study_id=3)
        other = jobs.create_job(s, "acme", "ensemble", {"top_k": 2}, study_id=4)
        assert jobs.get_job(s, job.id, "acme").id == job.id
        with pytest.raises(NotFound):
            jobs.get_job(s, job.id, "globex")
        assert [r.id for r in jobs.study_jobs(s, 3, "ensemble")] == [job.id]
        jobs.delete_study_jobs(s, 3)
        s.commit()
        with pytest.raises(NotFound):
            jobs.get_job(s, job.id)
        assert jobs.get_job(s, other.id).id == other.id


def test_a_scheduler_shutting_down_gives_its_jobs_back(db: Db) -> None:
    with db.sessions() as s:
        job = jobs.create_job(s, "acme", "preflight", {})
        assert jobs.claim(s, jobs.claimable(s, 1)[0], "replica-a", 60)
        jobs.release(s, [job.id], "replica-b")  # not its job: nothing happens
        assert jobs.get_job(s, job.id).status == "running"
        jobs.release(s, [job.id], "replica-a")
        row = jobs.get_job(s, job.id)
        assert (row.status, row.owner, row.attempts) == ("pending", None, 1)
        assert [r.id for r in jobs.claimable(s, 1)] == [job.id]  # at once, no lease to wait for
