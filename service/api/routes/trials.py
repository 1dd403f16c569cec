"""``/api/v1/studies/{id}/trials`` and ``/best``: read from Optuna's tables."""

from typing import Literal

from fastapi import APIRouter, Query

from service import crud
from service.api.deps import SessionDep, StorageDep
from service.errors import NotFound
from service.schemas import TrialDetail, TrialPage
from service.views import best_trial, load_trials, trial_detail, trial_public

router = APIRouter(prefix="/studies/{study_id}", tags=["trials"])


@router.get("/trials")
def list_trials(
    study_id: int,
    session: SessionDep,
    storage: StorageDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    state: Literal["RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"] | None = None,
) -> TrialPage:
    """Trials in number order, a page at a time, optionally of one state."""
    row = crud.get_study(session, study_id)
    trials = load_trials(storage, row.optuna_study_name)
    if state:
        trials = [t for t in trials if t.state.name == state]
    page = [trial_public(t) for t in trials[offset : offset + limit]]
    return TrialPage(items=page, total=len(trials), offset=offset, limit=limit)


@router.get("/trials/{number}")
def get_trial(study_id: int, number: int, session: SessionDep, storage: StorageDep) -> TrialDetail:
    """One trial with its learning curve (every metric, every epoch)."""
    row = crud.get_study(session, study_id)
    for t in load_trials(storage, row.optuna_study_name):
        if t.number == number:
            return trial_detail(t)
    raise NotFound(f"study {study_id} has no trial {number}")


@router.get("/best")
def get_best(study_id: int, session: SessionDep, storage: StorageDep) -> TrialDetail:
    """The best completed trial by the study's objective."""
    row = crud.get_study(session, study_id)
    best = best_trial(
        load_trials(storage, row.optuna_study_name), row.spec["objective"]["direction"]
    )
    if best is None:
        raise NotFound(f"study {study_id} has no completed trial yet")
    return trial_detail(best)
