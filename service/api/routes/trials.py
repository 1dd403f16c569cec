"""``/api/v1/studies/{id}/trials`` and ``/best``: read from Optuna's tables, and the trained
models (weights, TorchScript, spec) of each completed trial."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import FileResponse
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session

from search.results import pareto_front
from search.spec import FINISHED
from service.api.artifacts import ArtifactKind, artifact_file
from service.api.deps import (
    CallerDep,
    Id,
    Offset,
    SessionDep,
    SettingsDep,
    StorageDep,
    release,
)
from service.api.errors import CONFLICT
from service.api.examples import ENQUEUE_BODY
from service.api.schemas.responses import ParetoFront, TrialDetail, TrialEnqueued, TrialPage
from service.api.schemas.study import TrialEnqueue
from service.api.views import retrain_json, trial_detail, trial_public
from service.errors import Conflict, NotFound
from service.store import crud
from service.store import optuna_sql as q
from service.store.enqueue import enqueue


def own_study(study_id: Id, caller: CallerDep, session: SessionDep) -> None:
    """Every route here reads one study: another tenant's answers 404."""
    crud.get_study(session, study_id, caller.tenant)
    release(session)


router = APIRouter(prefix="/studies/{study_id}", tags=["trials"], dependencies=[Depends(own_study)])


@router.get("/trials")
def list_trials(
    study_id: Id,
    session: SessionDep,
    offset: Offset = 0,
    limit: int = Query(100, ge=1, le=1000),
    state: Literal["RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"] | None = None,
) -> TrialPage:
    """Trials in number order, a page at a time, optionally of one state."""
    row = crud.get_study(session, study_id)
    sid = q.optuna_study_id(session, row.optuna_study_name)
    trials, total = q.trial_page(session, sid, offset, limit, state)
    page = [trial_public(t) for t in trials]
    return TrialPage(items=page, total=total, offset=offset, limit=limit)


@router.post("/trials", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
def enqueue_trial(
    study_id: Id,
    body: Annotated[TrialEnqueue, ENQUEUE_BODY],
    caller: CallerDep,
    session: SessionDep,
    storage: StorageDep,
) -> TrialEnqueued:
    """Queue a trial with given parameters (any left out are sampled): it runs before the
    sampler's next proposal, as Optuna's ``enqueue_trial``, and counts in the budget. 422 for
    a parameter not in the search space or a value outside it; 409 when the study has ended,
    its algorithm proposes its own trials (pbt, pb2, darts), or its max_trials are taken."""
    row = crud.get_study(session, study_id)
    asked_by = f"tenant {caller.tenant}" + (f": {body.note}" if body.note else "")
    number = enqueue(session, storage, row, body.params, asked_by)
    return TrialEnqueued(number=number, state="WAITING", params=body.params, enqueued=asked_by)


def _trial(session: Session, study_id: int, number: int) -> FrozenTrial:
    row = crud.get_study(session, study_id)
    sid = q.optuna_study_id(session, row.optuna_study_name)
    trial = q.trial_by_number(session, sid, number)
    if trial is None:
        raise NotFound(f"study {study_id} has no trial {number}")
    return trial


def _best(session: Session, study_id: int) -> FrozenTrial:
    row = crud.get_study(session, study_id)
    dirs = crud.study_spec(row).directions
    if len(dirs) > 1:
        raise Conflict(f"study {study_id} has {len(dirs)} objectives: GET .../best lists its front")
    sid = q.optuna_study_id(session, row.optuna_study_name)
    best = q.best_trial(session, sid, dirs[0])
    trial = None if best is None else q.trial_by_id(session, best.trial_id)
    if trial is None and row.status in FINISHED:
        raise NotFound(
            f"study {study_id} ended ({row.status}) with no completed trial: none has a value"
        )
    if trial is None:
        raise NotFound(f"study {study_id} has no completed trial yet")
    return trial


@router.get("/trials/{number}")
def get_trial(study_id: Id, number: Id, session: SessionDep, settings: SettingsDep) -> TrialDetail:
    """One trial with its learning curve (every metric, every epoch) and its artifacts."""
    return trial_detail(_trial(session, study_id, number), settings.paths)


@router.get("/best")
def get_best(
    study_id: Id, session: SessionDep, storage: StorageDep, settings: SettingsDep
) -> TrialDetail | ParetoFront:
    """The best completed trial, or for several objectives the Pareto front."""
    row = crud.get_study(session, study_id)
    spec = crud.study_spec(row)
    if len(spec.objectives) > 1:
        # Only completed trials can be on the front.
        trials = crud.load_trials(storage, row.optuna_study_name, states=(TrialState.COMPLETE,))
        front = pareto_front(trials, spec.directions)
        objectives = [{"metric": o.metric, "direction": o.direction} for o in spec.objectives]
        return ParetoFront(objectives=objectives, trials=[trial_public(t) for t in front])
    return trial_detail(_best(session, study_id), settings.paths)


@router.get("/trials/{number}/retrain-spec")
def get_trial_retrain_spec(
    study_id: Id,
    number: Id,
    session: SessionDep,
    epochs: int | None = Query(None, ge=1, le=10_000, description="Train this long instead."),
) -> dict[str, Any]:
    """A complete study spec (POST it to /studies) that trains this trial's architecture and
    hyperparameters again, with the same seed: the best architecture of a NAS study, for full
    training."""
    row = crud.get_study(session, study_id)
    return retrain_json(row, _trial(session, study_id, number), epochs)


def _download(trial: FrozenTrial, study_id: int, kind: str, settings: SettingsDep) -> FileResponse:
    path, media_type = artifact_file(trial, settings.paths, kind)
    filename = f"study-{study_id}-trial-{trial.number}-{path.name}"
    return FileResponse(path, media_type=media_type, filename=filename)


@router.get("/trials/{number}/artifacts/{kind}", response_class=FileResponse)
def get_trial_artifact(
    study_id: Id,
    number: Id,
    kind: ArtifactKind,
    session: SessionDep,
    settings: SettingsDep,
) -> FileResponse:
    """Download a trial's ``weights`` (state_dict), ``torchscript`` or ``spec`` (JSON)."""
    return _download(_trial(session, study_id, number), study_id, kind, settings)


@router.get("/best/artifacts/{kind}", response_class=FileResponse, responses=CONFLICT)
def get_best_artifact(
    study_id: Id,
    kind: ArtifactKind,
    session: SessionDep,
    settings: SettingsDep,
) -> FileResponse:
    """Download the best trial's ``weights``, ``torchscript`` or ``spec``."""
    return _download(_best(session, study_id), study_id, kind, settings)
