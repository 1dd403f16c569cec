"""``/api/v1/studies/{id}/report``: a study's report as one self-contained HTML file."""

import optuna
from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from service.api.convert import spec_json
from service.api.deps import Id, SessionDep, StorageDep, release
from service.api.errors import non_json_responses
from service.api.routes.trials import own_study
from service.errors import NotFound
from service.reports.report import render_report
from service.store import crud

router = APIRouter(
    prefix="/studies/{study_id}", tags=["reports"], dependencies=[Depends(own_study)]
)


@router.get(
    "/report",
    response_class=HTMLResponse,
    responses=non_json_responses(
        "text/html", "The report: one HTML file, plotly.js and every plot inline."
    ),
)
def get_report(study_id: Id, session: SessionDep, storage: StorageDep) -> HTMLResponse:
    """The study's report: its status and best trial, optimization history, intermediate
    values, parallel coordinates, parameter importances, Pareto front (several objectives),
    the best trial's learning curves and the failed trials. A plot the trials cannot support
    yet is a short note. About 5 MB (plotly.js is inline); it renders in a few seconds."""
    # A sync route: rendering is CPU work, and FastAPI runs it in the threadpool.
    row = crud.get_study(session, study_id)
    name, status, reason = row.name, row.status, row.status_reason
    spec, optuna_name = spec_json(crud.study_spec(row)), row.optuna_study_name
    release(session)  # no connection held while the plots render
    try:
        study = optuna.load_study(study_name=optuna_name, storage=storage)
    except KeyError:
        raise NotFound(f"study {study_id} has no Optuna study {optuna_name!r}") from None
    page = render_report(
        study, spec, name=name, study_id=study_id, status=status, status_reason=reason
    )
    return HTMLResponse(page)
