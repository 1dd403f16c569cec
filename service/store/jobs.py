"""Jobs: work the API hands to the scheduler through the database (``tf_jobs``).

The API inserts a pending job; any scheduler replica claims it with a conditional update (only
one of several succeeds), runs it on Ray and writes its result. A claimed job carries a lease:
if its scheduler dies, the job is claimed again once the lease has run out (at most
:data:`MAX_ATTEMPTS` times, then it fails with the reason).
"""

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.store.orm import JobRow, utcnow

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
MAX_ATTEMPTS = 3


def create_job(
    session: Session, tenant: str, kind: str, request: dict[str, Any], study_id: int | None = None
) -> JobRow:
    """A pending job (committed)."""
    row = JobRow(tenant=tenant, kind=kind, study_id=study_id, request=request, status=PENDING)
    session.add(row)
    session.commit()
    return row


def get_job(session: Session, job_id: int, tenant: str | None = None) -> JobRow:
    """A job; another tenant's is not found.

    Raises:
        NotFound: no such job for this tenant.
    """
    row = session.get(JobRow, job_id, populate_existing=True)
    if row is None or (tenant is not None and row.tenant != tenant):
        raise NotFound(f"job {job_id} not found")
    return row


def claimable(session: Session, limit: int) -> Sequence[JobRow]:
    """Pending jobs, and running ones whose scheduler stopped renewing, oldest first."""
    return session.scalars(
        select(JobRow)
        .where(
            or_(
                JobRow.status == PENDING,
                and_(JobRow.status == RUNNING, JobRow.lease_until < time.time()),
            )
        )
        .order_by(JobRow.id)
        .limit(limit)
        .execution_options(populate_existing=True)  # what another replica wrote since
    ).all()


def claim(session: Session, row: JobRow, owner: str, lease_s: float) -> bool:
    """Take ``row`` for ``owner`` if nobody else did since it was read (its status, owner and
    attempts unchanged); True when this replica has it now."""
    done = session.execute(
        update(JobRow)
        .where(
            JobRow.id == row.id,
            JobRow.status == row.status,
            JobRow.attempts == row.attempts,
            or_(JobRow.status == PENDING, JobRow.lease_until < time.time()),
        )
        .values(
            status=RUNNING,
            owner=owner,
            lease_until=time.time() + lease_s,
            attempts=row.attempts + 1,
            started_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return done.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def renew(session: Session, job_ids: Sequence[int], owner: str, lease_s: float) -> None:
    """Extend the leases of ``owner``'s running jobs."""
    if job_ids:
        session.execute(
            update(JobRow)
            .where(JobRow.id.in_(job_ids), JobRow.owner == owner, JobRow.status == RUNNING)
            .values(lease_until=time.time() + lease_s)
            .execution_options(synchronize_session=False)
        )
        session.commit()


def finish(
    session: Session,
    job_id: int,
    owner: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Record a job's result (``done``) or its reason (``failed``); only its holder can.
    False when another replica holds it now."""
    done = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.owner == owner, JobRow.status == RUNNING)
        .values(
            status=FAILED if error is not None else DONE,
            result=result,
            error=error,
            lease_until=None,
            finished_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return done.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def release(session: Session, job_ids: Sequence[int], owner: str) -> None:
    """Give ``owner``'s running jobs back (a scheduler shutting down): pending again, for the
    next replica to take at once."""
    if job_ids:
        session.execute(
            update(JobRow)
            .where(JobRow.id.in_(job_ids), JobRow.owner == owner, JobRow.status == RUNNING)
            .values(status=PENDING, owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()


def delete_study_jobs(session: Session, study_id: int) -> None:
    """Forget a deleted study's jobs (not committed: part of the study's deletion)."""
    session.execute(delete(JobRow).where(JobRow.study_id == study_id))


def study_jobs(session: Session, study_id: int, kind: str) -> Sequence[JobRow]:
    """A study's jobs of one kind, newest first."""
    return session.scalars(
        select(JobRow)
        .where(JobRow.study_id == study_id, JobRow.kind == kind)
        .order_by(JobRow.id.desc())
    ).all()
