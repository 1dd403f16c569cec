"""External trials through the API: asking (budget, parallelism, one ask at a time per study),
and what a trial's client may say of it (its lease checked first).

The domain work is :mod:`search.external`; this module holds the rules of the service: which
studies hand trials out, the lease's token, and the errors each refusal is.
"""

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import text
from sqlalchemy.orm import Session

from search import optuna_compat
from search.external import asking, telling
from search.loop.lease import Lease, lease_of, new_token, renew
from search.spec import ACTIVE, ExternalTask, StudySpec
from service.errors import Conflict, NotFound, OverLimit, SpecInvalid
from service.store import crud, optuna_sql, quotas
from service.store.orm import StudyRow
from service.store.quotas import Quota

RETRY_AFTER_S = 1  # a full study's answer to an ask: how long to wait before the next
_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Granted:
    """An asked trial and the token its client proves its lease with."""

    asked: asking.Asked
    token: str


def external_spec(row: StudyRow) -> tuple[StudySpec, ExternalTask]:
    spec = crud.study_spec(row)
    if not isinstance(spec.task, ExternalTask):
        raise Conflict(
            f"study {row.id} trains its trials on the cluster (task kind {spec.task.kind}); "
            "only a study of task kind external hands trials to clients"
        )
    return spec, spec.task


@contextmanager
def _one_ask(session: Session, study_id: int) -> Iterator[None]:
    """One ask at a time per study: a lock in this process, and on PostgreSQL a transaction
    lock that other API processes wait on too (released at the session's commit)."""
    with _locks_guard:
        lock = _locks.setdefault(study_id, threading.Lock())
    with lock:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(7466, :id)"), {"id": study_id})
        else:  # SQLite: no read of this session may hold the file while Optuna writes
            session.commit()
        try:
            yield
        finally:
            session.commit()


def ask(session: Session, storage: RDBStorage, row: StudyRow, quota: Quota) -> Granted:
    """Lease the study's next trial to the caller.

    Raises:
        Conflict: not an external study; it has ended or is stopping; every trial of its budget
            was asked; its timeout passed.
        OverLimit: ``parallelism`` trials are out, or the tenant has its ``quota`` of trials in
            flight, on the cluster and out with clients together (429, Retry-After).
    """
    spec, _task = external_spec(row)
    if row.status not in ACTIVE or row.stop_requested:
        state = "is stopping" if row.stop_requested else f"has ended ({row.status})"
        raise Conflict(f"study {row.id} {state}: it hands out no more trials")
    sid = optuna_sql.optuna_study_id(session, row.optuna_study_name)
    if sid is None:
        raise Conflict(f"study {row.id} has no Optuna study (it is being deleted)")
    timeout, started = spec.budget.timeout_s, row.started_at
    if timeout is not None and started is not None:
        started = started if started.tzinfo else started.replace(tzinfo=UTC)  # SQLite: naive
        if time.time() - started.timestamp() >= timeout:
            raise Conflict(f"study {row.id} reached its timeout ({timeout:g} s): no new trials")
    with _one_ask(session, row.id):
        taken, waiting, out = optuna_sql.budget_counts(session, sid)
        if taken >= spec.budget.max_trials:
            raise Conflict(
                f"study {row.id} has asked all {spec.budget.max_trials} trials of its max_trials:"
                " nothing left to ask (raise max_trials with PATCH to ask more)"
            )
        if out >= spec.parallelism:
            raise OverLimit(
                "parallelism",
                spec.parallelism,
                out,
                "every slot has a trial out: ask again when one is told",
                retry_after=RETRY_AFTER_S,
            )
        _within_quota(session, row.tenant, quota)
        token = new_token()
        study = asking.load(storage, row.optuna_study_name, spec)
        return Granted(asking.ask(study, spec, token, queued=waiting > 0, number=taken), token)


def _within_quota(session: Session, tenant: str, quota: Quota) -> None:
    """An external trial out counts in its tenant's trials in flight, as one on the cluster
    does (the scheduler keeps those under the quota; an ask may not go beyond it)."""
    running = quotas.trials_in_flight(session, tenant)
    if running >= quota.trials_in_flight:
        raise OverLimit(
            "trials in flight per tenant",
            quota.trials_in_flight,
            running,
            "the tenant has its quota of trials running: ask again when one ends",
            retry_after=RETRY_AFTER_S,
        )


def _leased(
    session: Session, row: StudyRow, number: int, token: str
) -> tuple[StudySpec, FrozenTrial, Lease]:
    """The trial ``number`` and its lease, checked: it runs, ``token`` holds its lease, and the
    lease has not expired."""
    spec, task = external_spec(row)
    sid = optuna_sql.optuna_study_id(session, row.optuna_study_name)
    trial = optuna_sql.trial_by_number(session, sid, number)
    if trial is None:
        raise NotFound(f"study {row.id} has no trial {number}")
    if trial.state != TrialState.RUNNING:
        why = trial.user_attrs.get("fail_reason") or trial.user_attrs.get("pruned_reason")
        raise Conflict(
            f"trial {number} has finished ({trial.state.name})" + (f": {why}" if why else "")
        )
    lease = lease_of(trial, task.lease_s)
    if not lease.holds(token):
        raise Conflict(f"trial {number} is not leased to this client (another lease token)")
    if lease.expires < time.time():
        raise Conflict(f"the lease of trial {number} expired: the service fails it")
    return spec, trial, lease


def _metric_names(spec: StudySpec, metrics: Mapping[str, float]) -> None:
    task = spec.task
    assert isinstance(task, ExternalTask)
    unknown = [name for name in metrics if name not in task.metrics]
    if unknown:
        listed = ", ".join(task.metrics)
        raise SpecInvalid(
            [(("metrics", n), f"{n!r} is not among task.metrics ({listed})") for n in unknown]
        )


@contextmanager
def _saying(number: int) -> Iterator[None]:
    """What a client's report or tell cannot record, as the API's errors."""
    try:
        yield
    except telling.BadReport as exc:
        raise SpecInvalid([((exc.field,), str(exc))]) from exc
    except UpdateFinishedTrialError as exc:
        raise Conflict(f"trial {number} finished meanwhile (its lease expired)") from exc


def _opened(
    session: Session,
    storage: RDBStorage,
    row: StudyRow,
    number: int,
    token: str,
    metrics: Mapping[str, float],
) -> tuple[optuna.Study, StudySpec, int, Lease]:
    """The checked trial's study (its pruner loaded), spec, trial id and lease; the session's
    transaction ends before the writes."""
    spec, trial, lease = _leased(session, row, number, token)
    _metric_names(spec, metrics)
    session.commit()
    study = asking.load(storage, row.optuna_study_name, spec)
    return study, spec, optuna_compat.trial_id_of(trial), lease


def report(
    session: Session,
    storage: RDBStorage,
    row: StudyRow,
    number: int,
    token: str,
    step: int,
    metrics: Mapping[str, float],
) -> dict[str, Any]:
    """Record a report and renew the lease; the pruning decision."""
    study, spec, trial_id, lease = _opened(session, storage, row, number, token, metrics)
    with _saying(number):
        verdict = telling.report(study, spec, trial_id, step, metrics)
    if verdict is not None:
        reason = str(verdict.get("pruned_reason") or "pruned")
        return {"should_prune": True, "reason": reason, "lease_expires_at": lease.expires}
    renewed = renew(storage, trial_id, lease)
    return {"should_prune": False, "reason": None, "lease_expires_at": renewed.expires}


def tell(
    session: Session,
    storage: RDBStorage,
    row: StudyRow,
    number: int,
    token: str,
    outcome: telling.Outcome,
    metrics: Mapping[str, float],
    reason: str,
) -> None:
    """Finish the trial as its client says."""
    study, spec, trial_id, _lease = _opened(session, storage, row, number, token, metrics)
    with _saying(number):
        telling.tell(study, spec, trial_id, outcome, metrics, reason)


def renew_lease(
    session: Session, storage: RDBStorage, row: StudyRow, number: int, token: str
) -> float:
    """Extend the lease (a heartbeat); its new expiry (epoch seconds)."""
    _spec, trial, lease = _leased(session, row, number, token)
    session.commit()
    return renew(storage, optuna_compat.trial_id_of(trial), lease).expires
