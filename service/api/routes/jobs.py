"""Jobs the scheduler runs on Ray for the API: ``POST /studies:check`` (a pre-flight check of a
study spec, nothing stored), ``POST /studies/{id}/ensembles`` (an ensemble of its finished
trials), ``GET /jobs/{id}`` (either's status and result).

The API never talks to Ray (on a cluster it cannot): it writes a pending job, the scheduler
claims and runs it and writes the result (:mod:`service.store.jobs`). ``?wait=`` holds the
answer until the job ends or the seconds pass, whichever comes first.
"""

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import FileResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from search.checks import complete
from search.document import to_document
from search.spec import TrainTask
from service.api.artifacts import FILES, ArtifactKind
from service.api.convert import to_spec
from service.api.deps import CallerDep, Id, SchedulerDep, SessionDep, SettingsDep, release
from service.api.errors import CONFLICT, OVER_LIMIT
from service.api.examples import CHECK_BODY, examples
from service.api.schemas.jobs import EnsembleCreate, EnsemblePage, JobPublic
from service.api.schemas.study import StudyCreate
from service.api.validation import check_submission
from service.errors import Conflict, NotFound, OverLimit, SpecInvalid
from service.store import crud, jobs, leases
from service.store.orm import JobRow

router = APIRouter(tags=["jobs"])

MAX_JOBS_IN_FLIGHT = 4  # a tenant's pending and running jobs
_POLL_S = 0.2
ENSEMBLE_BODY = examples(
    average=("The 5 best trials, probabilities averaged", {"top_k": 5, "method": "average"}),
    greedy=("Caruana's selection among the 10 best", {"top_k": 10, "method": "greedy"}),
)
Wait = Annotated[
    float,
    Query(ge=0, le=60, description="Hold the answer until the job ends, at most this long (s)."),
]


def job_public(row: JobRow) -> JobPublic:
    request = {k: v for k, v in row.request.items() if k != "spec"}
    return JobPublic(
        id=row.id,
        kind=row.kind,  # type: ignore[arg-type]
        status=row.status,  # type: ignore[arg-type]
        study_id=row.study_id,
        request=request,
        result=row.result,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _waited(
    session: Session, job_id: int, tenant: str, wait: float, response: Response
) -> JobPublic:
    """The job once it ended or ``wait`` seconds passed; 200 when ended, 202 while not."""
    deadline = time.monotonic() + wait
    while True:
        row = jobs.get_job(session, job_id, tenant)
        ended = row.status in (jobs.DONE, jobs.FAILED)
        if ended or time.monotonic() >= deadline:
            response.status_code = status.HTTP_200_OK if ended else status.HTTP_202_ACCEPTED
            return job_public(row)
        release(session)  # hold no connection while waiting
        time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))


def _admit(session: Session, tenant: str) -> None:
    busy = session.scalar(
        select(func.count())
        .select_from(JobRow)
        .where(JobRow.tenant == tenant, JobRow.status.in_((jobs.PENDING, jobs.RUNNING)))
    )
    if (busy or 0) >= MAX_JOBS_IN_FLIGHT:
        raise OverLimit(
            "jobs in flight", MAX_JOBS_IN_FLIGHT, int(busy or 0), "retry when one has ended"
        )


@router.post(
    "/studies:check",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": JobPublic, "description": "It ended within ?wait."},
        **OVER_LIMIT,
    },
)
def check_study(
    body: Annotated[StudyCreate, CHECK_BODY],
    caller: CallerDep,
    session: SessionDep,
    scheduler: SchedulerDep,
    response: Response,
    wait: Wait = 0,
    points: int = Query(3, ge=1, le=8, description="Points of the search space to check."),
    seed: int = Query(0, ge=0, le=2**31 - 1, description="Seeds the points and the networks."),
) -> JobPublic:
    """A pre-flight check of a study spec, on Ray, storing nothing: the data as the network
    sees it, the initial loss against its expected value, one batch's gradients and
    activations per layer, a tiny subset memorized, a short fit scored on validation, and a
    learning-rate range test; ``result.findings`` says, in sentences, what to change. The spec
    is validated as ``POST /studies`` validates it (422 at the same paths)."""
    spec = to_spec(body)
    errors = check_submission(
        body,
        spec,
        lambda upload_id: crud.upload_info(session, upload_id, caller.tenant),
        lambda other: crud.study_directions(session, other, caller.tenant),
        worker_plugins=leases.worker_plugins(session),
    )
    if not errors and not isinstance(spec.task, TrainTask):
        errors = [(("task", "kind"), "a pre-flight check trains networks: task.kind must be train")]
    if errors:
        raise SpecInvalid(errors)
    _admit(session, caller.tenant)
    request: dict[str, Any] = {
        "name": spec.name,
        "points": points,
        "seed": seed,
        "spec": to_document(complete(spec)),
    }
    row = jobs.create_job(session, caller.tenant, "preflight", request)
    if scheduler:
        scheduler.wake()
    return _waited(session, row.id, caller.tenant, wait, response)


@router.get("/jobs/{job_id}", responses={202: {"model": JobPublic}})
def get_job(
    job_id: Id, caller: CallerDep, session: SessionDep, response: Response, wait: Wait = 0
) -> JobPublic:
    """A job: ``pending``, ``running``, ``done`` (with ``result``) or ``failed`` (``error``);
    200 once it ended, 202 before."""
    return _waited(session, job_id, caller.tenant, wait, response)


@router.post(
    "/studies/{study_id}/ensembles",
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": JobPublic}, **CONFLICT, **OVER_LIMIT},
)
def create_ensemble(
    study_id: Id,
    caller: CallerDep,
    session: SessionDep,
    scheduler: SchedulerDep,
    response: Response,
    body: Annotated[EnsembleCreate | None, ENSEMBLE_BODY] = None,
    wait: Wait = 0,
) -> JobPublic:
    """Build an ensemble of the study's ``top_k`` best completed trials (``average``, ``vote``
    or ``greedy``), score it on the validation split (the metrics, NLL, ECE; beside each
    member's) and export it as one TorchScript module with its spec (``.../artifacts/``).
    409 for a study whose task is not a classification."""
    body = body or EnsembleCreate()  # no body: the defaults
    row = crud.get_study(session, study_id, caller.tenant)
    spec = crud.study_spec(row)
    if not isinstance(spec.task, TrainTask) or len(spec.objectives) != 1:
        raise Conflict(
            f"study {study_id} is not a single-objective training study: nothing to ensemble"
        )
    info = _task_of(session, spec.task, caller.tenant)
    if info == "regression":
        raise Conflict(f"study {study_id} is a regression: ensembles combine class probabilities")
    _admit(session, caller.tenant)
    request = {"top_k": body.top_k, "method": body.method}
    job = jobs.create_job(session, caller.tenant, "ensemble", request, study_id)
    if scheduler:
        scheduler.wake()
    return _waited(session, job.id, caller.tenant, wait, response)


def _task_of(session: Session, task: TrainTask, tenant: str) -> str | None:
    from search.trials.train import named_info

    ref = task.dataset
    if ref.upload_id is not None:
        info = crud.upload_info(session, ref.upload_id, tenant)
        return None if info is None else info.task
    try:
        return named_info(ref).task
    except ValueError:
        return None


@router.get("/studies/{study_id}/ensembles")
def list_ensembles(study_id: Id, caller: CallerDep, session: SessionDep) -> EnsemblePage:
    """The study's ensembles, newest first."""
    crud.get_study(session, study_id, caller.tenant)
    return EnsemblePage(
        items=[job_public(r) for r in jobs.study_jobs(session, study_id, "ensemble")]
    )


_FILES = FILES  # the same kinds and files as a trial's


@router.get("/studies/{study_id}/ensembles/{job_id}/artifacts/{kind}", response_class=FileResponse)
def get_ensemble_artifact(
    study_id: Id,
    job_id: Id,
    kind: ArtifactKind,
    caller: CallerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> FileResponse:
    """Download an ensemble's ``torchscript`` (one module: raw inputs in, the ensemble's
    log-probabilities out), its ``weights`` (that module's state_dict) or its ``spec``
    (members, their weights in the ensemble, scores, input and output)."""
    study = crud.get_study(session, study_id, caller.tenant)
    job = jobs.get_job(session, job_id, caller.tenant)
    if job.study_id != study_id or job.kind != "ensemble" or job.status != jobs.DONE:
        raise NotFound(f"study {study_id} has no finished ensemble {job_id}")
    name, media_type = _FILES[kind]
    path = settings.paths.ensemble(study.optuna_study_name, job_id) / name
    if not path.is_file() or not settings.paths.serves(path):
        raise NotFound(f"ensemble {job_id} has no {kind} file")
    return FileResponse(
        path, media_type=media_type, filename=f"study-{study_id}-ensemble-{job_id}-{name}"
    )
