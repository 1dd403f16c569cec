"""``/api/v1/studies/{id}/trials`` and ``/best``: read from Optuna's tables, and the trained
models (weights, TorchScript, spec) of each completed trial."""

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial
from sqlalchemy.orm import Session

from service import crud
from service.api.deps import (
    CallerDep,
    Id,
    Offset,
    SessionDep,
    SettingsDep,
    StorageDep,
    release,
)
from service.artifacts import ArtifactKind, artifact_file
from service.errors import CONFLICT, Conflict, NotFound
from service.schemas import ParetoFront, TrialDetail, TrialPage
from service.views import (
    best_trial,
    directions,
    load_trials,
    pareto_front,
    retrain_spec,
    trial_detail,
    trial_public,
)


def own_study(study_id: Id, caller: CallerDep, session: SessionDep) -> None:
    """Every route here reads one study: another tenant's answers 404."""
    crud.get_study(session, study_id, caller.tenant)
    release(session)


router = APIRouter(prefix="/studies/{study_id}", tags=["trials"], dependencies=[Depends(own_study)])


@router.get("/trials")
def list_trials(
    study_id: Id,
    session: SessionDep,
    storage: StorageDep,
    offset: Offset = 0,
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


def _trial(session: Session, storage: RDBStorage, study_id: int, number: int) -> FrozenTrial:
    row = crud.get_study(session, study_id)
    for t in load_trials(storage, row.optuna_study_name):
        if t.number == number:
            return t
    raise NotFound(f"study {study_id} has no trial {number}")


def _best(session: Session, storage: RDBStorage, study_id: int) -> FrozenTrial:
    row = crud.get_study(session, study_id)
    trials = load_trials(storage, row.optuna_study_name)
    dirs = directions(row.spec)
    if len(dirs) > 1:
        raise Conflict(f"study {study_id} has {len(dirs)} objectives: GET .../best lists its front")
    best = best_trial(trials, dirs[0])
    if best is None:
        raise NotFound(f"study {study_id} has no completed trial yet")
    return best


@router.get("/trials/{number}")
def get_trial(
    study_id: Id, number: Id, session: SessionDep, storage: StorageDep, settings: SettingsDep
) -> TrialDetail:
    """One trial with its learning curve (every metric, every epoch) and its artifacts."""
    return trial_detail(_trial(session, storage, study_id, number), settings.data_dir)


@router.get("/best")
def get_best(
    study_id: Id, session: SessionDep, storage: StorageDep, settings: SettingsDep
) -> TrialDetail | ParetoFront:
    """The best completed trial, or for several objectives the Pareto front."""
    row = crud.get_study(session, study_id)
    if len(directions(row.spec)) > 1:
        trials = load_trials(storage, row.optuna_study_name)
        front = pareto_front(trials, directions(row.spec))
        return ParetoFront(
            objectives=row.spec["objectives"], trials=[trial_public(t) for t in front]
        )
    return trial_detail(_best(session, storage, study_id), settings.data_dir)


@router.get("/trials/{number}/retrain-spec")
def get_trial_retrain_spec(
    study_id: Id,
    number: Id,
    session: SessionDep,
    storage: StorageDep,
    epochs: int | None = Query(None, ge=1, le=10_000, description="Train this long instead."),
) -> dict[str, Any]:
    """A complete study spec (POST it to /studies) that trains this trial's architecture and
    hyperparameters again, with the same seed: the best architecture of a NAS study, for full
    training."""
    row = crud.get_study(session, study_id)
    return retrain_spec(row.spec, _trial(session, storage, study_id, number), epochs)


def _download(trial: FrozenTrial, study_id: int, kind: str, settings: SettingsDep) -> FileResponse:
    path, media_type = artifact_file(trial, settings.data_dir, kind)
    filename = f"study-{study_id}-trial-{trial.number}-{path.name}"
    return FileResponse(path, media_type=media_type, filename=filename)


@router.get("/trials/{number}/artifacts/{kind}", response_class=FileResponse)
def get_trial_artifact(
    study_id: Id,
    number: Id,
    kind: ArtifactKind,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> FileResponse:
    """Download a trial's ``weights`` (state_dict), ``torchscript`` or ``spec`` (JSON)."""
    return _download(_trial(session, storage, study_id, number), study_id, kind, settings)


@router.get("/best/artifacts/{kind}", response_class=FileResponse, responses=CONFLICT)
def get_best_artifact(
    study_id: Id,
    kind: ArtifactKind,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> FileResponse:
    """Download the best trial's ``weights``, ``torchscript`` or ``spec``."""
    return _download(_best(session, storage, study_id), study_id, kind, settings)
