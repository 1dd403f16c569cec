"""Scheduler replicas on one database: who runs which study, for how long, and the fence.

Any number of scheduler processes share the studies. Each runs a study only while it holds the
study's lease in ``tf_studies``: its ``owner`` id, ``lease_until`` (epoch seconds) and a fencing
token ``fence`` that grows by one with every new owner. A replica renews its leases in the
background; one that dies (or hangs) stops renewing, and when ``lease_until`` has passed another
replica takes the study with a conditional update (the token it read, plus one) and resumes it.

Expiry decides only *when* another replica may take a study. What keeps a replica that lost a
study from writing to it is the token: every write of a run goes through a storage made by
:func:`fenced_storage`, whose every INSERT, UPDATE or DELETE is preceded, in the same
transaction, by a check that the study still has this owner and token (on PostgreSQL the row is
locked ``FOR SHARE`` until the commit; on SQLite a no-op UPDATE takes the database's one write
lock). A write after a takeover raises :class:`LeaseLost` and is rolled back; the scheduler's
own status writes (``crud.mark_*``) carry the same condition. The fenced storages share the
scheduler's connection pool: the lease rides on their connections as an execution option.
"""

import math
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from optuna.storages import RDBStorage
from sqlalchemy import delete, event, func, or_, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from service.store import optuna_compat
from service.store.orm import SchedulerRow, StudyRow


class LeaseLost(Exception):
    """This replica no longer owns the study: another took it over (its lease had expired)."""


def lost_lease(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the study has another scheduler now."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, LeaseLost):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def replica_id() -> str:
    """A new replica's id: host, process and a random part (a pid may be reused)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    """One study held by this replica: the token it got when it took the study."""

    study_id: int
    owner: str
    token: int
    lost: bool = False  # set when a renewal found the study taken by another replica


def claim(session: Session, row: StudyRow, owner: str, lease_s: float) -> Lease | None:
    """Take ``row``'s study if it is unowned, its lease has expired, or it is this replica's;
    None when another replica holds it or took it meanwhile (the token ``row`` was read with
    changed, or a write of the owner's still holds the row: it is tried again next round).

    On PostgreSQL the update waits at most a second for the row's lock, so a replica paused in
    the middle of a write holds up this replica's rounds no longer than that (the database
    ends the paused one's transaction after :data:`IDLE_IN_TRANSACTION_S`)."""
    now = time.time()
    try:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL lock_timeout = '1s'"))
        done = session.execute(
            update(StudyRow)
            .where(
                StudyRow.id == row.id,
                StudyRow.fence == row.fence,
                or_(StudyRow.owner.is_(None), StudyRow.owner == owner, StudyRow.lease_until < now),
            )
            .values(owner=owner, fence=row.fence + 1, lease_until=now + lease_s)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    except sa_exc.OperationalError as exc:
        session.rollback()
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            return None
        raise
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return Lease(row.id, owner, row.fence + 1)


_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout ran out


def held_by_another(row: StudyRow, owner: str) -> bool:
    """Whether another replica holds ``row``'s study now."""
    return (
        row.owner is not None
        and row.owner != owner
        and row.lease_until is not None
        and row.lease_until >= time.time()
    )


def renew(session: Session, leases: Iterable[Lease], lease_s: float) -> list[Lease]:
    """Extend every lease still held; returns those another replica took (marked lost)."""
    lost = []
    for lease in leases:
        done = session.execute(
            update(StudyRow)
            .where(*_held(lease))
            .values(lease_until=time.time() + lease_s)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            lease.lost = True
            lost.append(lease)
    session.commit()
    return lost


def release(session: Session, lease: Lease) -> None:
    """Give a study back at once (a finished study, or a replica shutting down): the next
    replica need not wait for the lease to expire."""
    session.execute(
        update(StudyRow)
        .where(*_held(lease))
        .values(owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def _held(lease: Lease) -> tuple[Any, ...]:
    return (
        StudyRow.id == lease.study_id,
        StudyRow.owner == lease.owner,
        StudyRow.fence == lease.token,
    )


def held(lease: Lease | None) -> tuple[Any, ...]:
    """The WHERE clause of a write that only the lease's holder may do (none without one)."""
    return () if lease is None else _held(lease)


# -- the replicas ---------------------------------------------------------------------------


def heartbeat(
    session: Session,
    owner: str,
    lease_s: float,
    started_at: float,
    plugins: dict[str, Any] | None = None,
) -> int:
    """Say this replica lives for another ``lease_s`` (with the catalog plugins its Ray
    workers have, once known); returns how many replicas live now (this one included).
    Replicas silent for long are forgotten."""
    now = time.time()
    row = session.get(SchedulerRow, owner)
    if row is None:
        host, pid = owner.split(":")[0], os.getpid()
        row = SchedulerRow(id=owner, host=host, pid=pid, started_at=started_at, seen_until=0.0)
        session.add(row)
    row.seen_until = now + lease_s
    if plugins is not None and row.plugins != plugins:
        row.plugins = plugins
    session.execute(delete(SchedulerRow).where(SchedulerRow.seen_until < now - 3600))
    session.commit()
    live = session.scalar(select(func.count()).where(SchedulerRow.seen_until >= now))
    return max(1, int(live or 0))


def worker_plugins(session: Session) -> list[dict[str, Any]]:
    """The catalog plugins the live replicas' Ray workers have, one inventory each (none
    before any replica has looked)."""
    query = select(SchedulerRow.plugins).where(SchedulerRow.seen_until >= time.time())
    return [p for p in session.scalars(query) if p is not None]


def leave(session: Session, owner: str) -> None:
    """This replica stops: the others count it out at once."""
    session.execute(delete(SchedulerRow).where(SchedulerRow.id == owner))
    session.commit()


def fair_share(n_active: int, n_replicas: int) -> int:
    """How many of ``n_active`` studies one of ``n_replicas`` replicas should hold."""
    return max(1, math.ceil(n_active / max(1, n_replicas)))


# -- fenced writes ----------------------------------------------------------------------------

_DML = ("INSERT", "UPDATE", "DELETE")
# PostgreSQL ends a fenced write's transaction that waits this long on its client (a replica
# paused or hung in the middle of the write), and the row lock with it, so no such replica keeps
# the others from taking the study. A fenced write does no other work between its statements.
IDLE_IN_TRANSACTION_S = 10.0

_CHECKS = {
    # PostgreSQL: lock the study's row until the commit, so a takeover waits for this write;
    # set_config(..., true) is SET LOCAL: the bound holds for this transaction only.
    "postgresql": "SELECT set_config('idle_in_transaction_session_timeout', {p}, true) "
    "FROM tf_studies WHERE id = {p} AND owner = {p} AND fence = {p} FOR SHARE",
    # SQLite: a no-op UPDATE begins the write transaction and takes the one write lock.
    "sqlite": "UPDATE tf_studies SET fence = fence WHERE id = {p} AND owner = {p} AND fence = {p}",
}


_OPTION = "tuneforge_lease"  # the execution option that carries a run's lease


def _check_fence(
    conn: Any, cursor: Any, statement: str, params: Any, context: Any, *_: Any
) -> None:
    """Before an INSERT, UPDATE or DELETE on a connection that carries a lease: check, in the
    same transaction, that the lease still holds; LeaseLost (the write rolls back) if not."""
    lease = None if context is None else context.execution_options.get(_OPTION)
    if lease is None or not statement.lstrip()[:6].upper().startswith(_DML):
        return
    if not lease.lost:
        dialect = conn.dialect
        check = _CHECKS[dialect.name].format(p="?" if dialect.paramstyle == "qmark" else "%s")
        own = conn.connection.cursor()  # the DBAPI connection's: this transaction's
        args: tuple[Any, ...] = (lease.study_id, lease.owner, lease.token)
        if dialect.name == "postgresql":
            args = (f"{int(IDLE_IN_TRANSACTION_S * 1000)}ms", *args)
        own.execute(check, args)
        held = own.fetchone() is not None if dialect.name == "postgresql" else own.rowcount
        own.close()
        lease.lost = not held
    if lease.lost:
        raise LeaseLost(f"study {lease.study_id} has another scheduler now")


def fenced_storage(base: RDBStorage, lease: Lease) -> RDBStorage:
    """Optuna's storage for one study's run: ``base`` (its connection pool shared), whose every
    write first checks ``lease`` in its own transaction (see :func:`_check_fence`)."""
    if not event.contains(base.engine, "before_cursor_execute", _check_fence):
        event.listen(base.engine, "before_cursor_execute", _check_fence)
    return optuna_compat.rebound(base, base.engine.execution_options(**{_OPTION: lease}))
