"""``/api/v1/studies``: submit, list, inspect, change, stop and delete studies."""

import logging
from typing import Annotated

from fastapi import APIRouter, Query, status

from search.checks import complete
from search.spec import FINISHED, StudyStatus
from service.api.convert import to_spec
from service.api.deps import (
    CallerDep,
    Id,
    Offset,
    QuotaDep,
    SchedulerDep,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from service.api.errors import CONFLICT, OVER_LIMIT, QUOTA_REFUSED
from service.api.examples import PATCH_BODY, STUDY_BODY
from service.api.schemas.responses import StudyPage, StudyPublic
from service.api.schemas.study import StudyCreate, StudyPatch
from service.api.validation import check_submission, trial_sources, with_sources
from service.api.views import study_public
from service.errors import SpecInvalid
from service.store import crud, leases
from service.store.quotas import check_new_study, check_parallelism

log = logging.getLogger(__name__)
router = APIRouter(prefix="/studies", tags=["studies"])


@router.post("", status_code=status.HTTP_201_CREATED, responses={**OVER_LIMIT, **QUOTA_REFUSED})
def create_study(
    body: Annotated[StudyCreate, STUDY_BODY],
    caller: CallerDep,
    quota: QuotaDep,
    session: SessionDep,
    storage: StorageDep,
    scheduler: SchedulerDep,
) -> StudyPublic:
    """Submit a study; the scheduler starts its trials at once. 429 when the tenant has its
    quota of active studies already (retry when one ends); 403 when the study's parallelism
    is above the tenant's trials-in-flight quota."""
    spec = to_spec(body)
    sources = trial_sources(session, storage, caller.tenant)  # a transfer's source trial
    errors = check_submission(
        body,
        spec,
        lambda upload_id: crud.upload_info(session, upload_id, caller.tenant),
        lambda other: crud.study_directions(session, other, caller.tenant),
        sources,
        leases.worker_plugins(session),
    )
    if errors:
        raise SpecInvalid(errors)
    spec = with_sources(spec, sources)
    check_new_study(session, caller.tenant, quota, spec.parallelism)
    # Every default spelled out: the stored study keeps its meaning if a default changes.
    row = crud.create_study(session, storage, complete(spec), caller.tenant)
    log.info("study %s (%s) submitted by tenant %s", row.id, row.name, caller.tenant)
    if scheduler:
        scheduler.wake()
    return study_public(row, session)


@router.get("")
def list_studies(
    caller: CallerDep,
    session: SessionDep,
    offset: Offset = 0,
    limit: int = Query(50, ge=1, le=500),
    status: StudyStatus | None = Query(None, description="Only studies with this status."),
) -> StudyPage:
    rows, total = crud.list_studies(session, offset, limit, caller.tenant, status)
    items = [study_public(r, session) for r in rows]
    return StudyPage(items=items, total=total, offset=offset, limit=limit)


@router.get("/{study_id}")
def get_study(study_id: Id, caller: CallerDep, session: SessionDep) -> StudyPublic:
    return study_public(crud.get_study(session, study_id, caller.tenant), session)


@router.patch("/{study_id}", responses={**CONFLICT, **OVER_LIMIT, **QUOTA_REFUSED})
def patch_study(
    study_id: Id,
    body: Annotated[StudyPatch, PATCH_BODY],
    caller: CallerDep,
    quota: QuotaDep,
    session: SessionDep,
    scheduler: SchedulerDep,
) -> StudyPublic:
    """Extend (or cut) the budget or change parallelism; a finished study resumes. 409 when
    the study changed while the request ran (read it again and retry)."""
    budget = None if body.budget is None else body.budget.model_dump(exclude_unset=True)
    row = crud.get_study(session, study_id, caller.tenant)
    parallelism = body.parallelism or crud.study_spec(row).parallelism
    if budget is not None and row.status in FINISHED:  # a new budget resumes it
        check_new_study(session, caller.tenant, quota, parallelism)
    elif body.parallelism is not None:
        check_parallelism(quota, parallelism)
    row = crud.patch_study(session, row, budget, body.parallelism)
    if scheduler:
        scheduler.wake()
    return study_public(row, session)


@router.post("/{study_id}/stop", status_code=status.HTTP_202_ACCEPTED)
def stop_study(
    study_id: Id,
    caller: CallerDep,
    session: SessionDep,
    scheduler: SchedulerDep,
    drain: bool = Query(False, description="Let trials in flight finish instead of cancelling."),
) -> StudyPublic:
    """Stop a study: trials in flight are cancelled (FAIL, "stopped by user"), or with
    ``?drain=true`` no new trial starts and the study stops when they finish. A finished
    study is answered as it is."""
    row = crud.request_stop(session, crud.get_study(session, study_id, caller.tenant), drain)
    if scheduler:
        scheduler.wake()
    return study_public(row, session)


@router.delete("/{study_id}", status_code=status.HTTP_204_NO_CONTENT, responses=CONFLICT)
def delete_study(
    study_id: Id,
    caller: CallerDep,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> None:
    """Delete a finished study, all its trials and their artifacts (409 while it runs)."""
    row = crud.get_study(session, study_id, caller.tenant)
    crud.delete_study(session, storage, settings.paths, row)
