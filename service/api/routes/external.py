"""External trials: ``POST /studies/{id}/ask`` and a leased trial's ``report``, ``tell`` and
``renew`` (docs/external.md). The study's sampler and pruner run here, in the API process; the
scheduler fails trials whose lease expired and ends the study on its budget."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status

from service.api.deps import CallerDep, Id, QuotaDep, SessionDep, SettingsDep, StorageDep
from service.api.errors import CONFLICT, OVER_LIMIT
from service.api.examples import RENEW_BODY, REPORT_BODY, TELL_BODY
from service.api.routes.trials import own_study
from service.api.schemas.external import Asked, RenewIn, RenewOut, ReportIn, ReportOut, TellIn
from service.api.schemas.responses import TrialDetail
from service.api.views import trial_detail
from service.errors import NotFound
from service.store import crud, external
from service.store import optuna_sql as q

router = APIRouter(
    prefix="/studies/{study_id}", tags=["external trials"], dependencies=[Depends(own_study)]
)


def _at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


@router.post("/ask", status_code=status.HTTP_201_CREATED, responses={**CONFLICT, **OVER_LIMIT})
def ask(
    study_id: Id, caller: CallerDep, quota: QuotaDep, session: SessionDep, storage: StorageDep
) -> Asked:
    """Lease the study's next trial (an external study's): its parameters, seed and lease.
    429 with Retry-After while ``parallelism`` trials are out, or while the tenant has its
    quota of trials in flight (on the cluster and out with clients together); 409 when the
    study has ended or every trial of its budget was asked."""
    row = crud.get_study(session, study_id, caller.tenant)
    granted = external.ask(session, storage, row, quota)
    asked = granted.asked
    return Asked(
        number=asked.number,
        params=asked.params,
        seed=asked.seed,
        lease=granted.token,
        lease_s=asked.lease.lease_s,
        lease_expires_at=_at(asked.lease.expires),
    )


@router.post("/trials/{number}/report", responses=CONFLICT)
def report(
    study_id: Id,
    number: Id,
    body: Annotated[ReportIn, REPORT_BODY],
    caller: CallerDep,
    session: SessionDep,
    storage: StorageDep,
) -> ReportOut:
    """Intermediate metrics at ``step``; the answer says whether the trial is pruned (then it
    is PRUNED already: stop evaluating it). Renews the lease. 409 when the trial is not
    leased to the caller, has finished, or its lease expired."""
    row = crud.get_study(session, study_id, caller.tenant)
    said = external.report(session, storage, row, number, body.lease, body.step, body.metrics)
    return ReportOut(
        should_prune=said["should_prune"],
        reason=said["reason"],
        lease_expires_at=_at(said["lease_expires_at"]),
    )


@router.post("/trials/{number}/tell", responses=CONFLICT)
def tell(
    study_id: Id,
    number: Id,
    body: Annotated[TellIn, TELL_BODY],
    caller: CallerDep,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> TrialDetail:
    """The trial's outcome: complete (its objectives among ``metrics``), fail (with a reason)
    or pruned. 409 as for a report."""
    row = crud.get_study(session, study_id, caller.tenant)
    external.tell(session, storage, row, number, body.lease, body.state, body.metrics, body.reason)
    sid = q.optuna_study_id(session, row.optuna_study_name)
    trial = q.trial_by_number(session, sid, number)
    if trial is None:
        raise NotFound(f"study {study_id} has no trial {number}")
    return trial_detail(trial, settings.paths)


@router.post("/trials/{number}/renew", responses=CONFLICT)
def renew(
    study_id: Id,
    number: Id,
    body: Annotated[RenewIn, RENEW_BODY],
    caller: CallerDep,
    session: SessionDep,
    storage: StorageDep,
) -> RenewOut:
    """Extend the trial's lease by ``lease_s`` (a heartbeat for long steps)."""
    row = crud.get_study(session, study_id, caller.tenant)
    expires = external.renew_lease(session, storage, row, number, body.lease)
    return RenewOut(lease_expires_at=_at(expires))
