"""Every write to the ``tf_`` tables, and the Optuna study that goes with each row."""

import uuid
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import cast

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.data import DatasetInfo, Kind, Task
from search.loop import to_distribution
from service.datasets import Upload, new_dataset_id, remove_upload, save_upload, upload_id_of
from service.errors import Conflict, NotFound
from service.orm import DEFAULT_TENANT, DatasetRow, StudyRow, utcnow
from service.schemas import StudyCreate, StudyPatch
from service.views import delete_optuna_study, directions, load_trials

ACTIVE = ("pending", "running")
FINISHED = ("completed", "failed", "stopped")


def create_study(
    session: Session, storage: RDBStorage, body: StudyCreate, tenant: str = DEFAULT_TENANT
) -> StudyRow:
    """Create the Optuna study, then the row that owns it; on any error neither remains."""
    optuna_name = f"{body.name}-{uuid.uuid4().hex[:8]}"
    # The Optuna study first: on SQLite an open write transaction here would lock out
    # Optuna's own connection.
    objectives = body.objective_list()
    study = optuna.create_study(
        storage=storage, study_name=optuna_name, directions=[o.direction for o in objectives]
    )
    try:
        with warnings.catch_warnings():  # experimental since 3.2, and what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.metric for o in objectives])
        _warm_start(session, storage, study, body)
        study.set_user_attr("tuneforge_spec", body.model_dump(mode="json"))
        row = StudyRow(
            tenant=tenant,
            name=body.name,
            optuna_study_name=optuna_name,
            spec=body.model_dump(mode="json"),
            status="pending",
        )
        session.add(row)
        session.commit()
    except BaseException:
        session.rollback()
        delete_optuna_study(storage, optuna_name)
        raise
    study.set_user_attr("tuneforge_study_id", row.id)
    return row


def _warm_start(
    session: Session, storage: RDBStorage, study: optuna.Study, body: StudyCreate
) -> None:
    """Queue the given points first; copy the finished trials of another study whose
    parameters fit this space, so the sampler starts from what is already known."""
    for point in body.warm_start.points:
        study.enqueue_trial(dict(point), user_attrs={"warm_start": "point"})
    if body.warm_start.from_study is None:
        return
    source = get_study(session, body.warm_start.from_study)
    space = {p.name: p for p in body.to_spec().search_space}
    copied = [
        optuna.trial.create_trial(
            params=t.params,
            distributions={k: to_distribution(space[k]) for k in t.params},
            values=t.values,
            intermediate_values=t.intermediate_values,
            user_attrs={**t.user_attrs, "warm_start": f"study {source.id} trial {t.number}"},
        )
        for t in load_trials(storage, source.optuna_study_name)
        if t.state == TrialState.COMPLETE
        and all(k in space and space[k].contains(v) for k, v in t.params.items())
    ]
    study.add_trials(copied)


def study_directions(
    session: Session, study_id: int, tenant: str | None = None
) -> list[str] | None:
    """A study's objective directions (None if there is no such study of ``tenant``), for
    warm starts."""
    row = session.get(StudyRow, study_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        return None
    return directions(row.spec)


def get_study(session: Session, study_id: int, tenant: str | None = None) -> StudyRow:
    """The study ``study_id``; for a ``tenant``, only its own (another's is not found)."""
    row = session.get(StudyRow, study_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        raise NotFound(f"study {study_id} not found")
    return row


def list_studies(
    session: Session, offset: int, limit: int, tenant: str | None = None
) -> tuple[Sequence[StudyRow], int]:
    query = (
        select(StudyRow) if tenant is None else select(StudyRow).where(StudyRow.tenant == tenant)
    )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(StudyRow.id).offset(offset).limit(limit))
    return rows.all(), total


def request_stop(session: Session, row: StudyRow, drain: bool = False) -> StudyRow:
    """Ask the scheduler to stop a study: cancel its trials in flight, or with ``drain`` let
    them finish and start no more. A finished study stays as it is."""
    if row.status in ACTIVE:
        row.stop_requested = True
        row.stop_drain = drain
        session.commit()
    return row


def patch_study(session: Session, row: StudyRow, patch: StudyPatch) -> StudyRow:
    """Change budget or parallelism. A new budget on a finished study resumes it."""
    spec = dict(row.spec)
    if patch.budget is not None:
        spec["budget"] = {**spec["budget"], **patch.budget.model_dump(exclude_unset=True)}
    if patch.parallelism is not None:
        spec["parallelism"] = patch.parallelism
    row.spec = spec
    if patch.budget is not None and row.status in FINISHED:
        row.status, row.status_reason = "pending", "resumed with a new budget"
        row.stop_requested = row.stop_drain = False
        row.started_at = row.finished_at = None
    session.commit()
    return row


def delete_study(session: Session, storage: RDBStorage, row: StudyRow) -> None:
    """Delete a finished study with all its trials."""
    if row.status in ACTIVE:
        raise Conflict(f"study {row.id} is {row.status}; stop it first (POST .../stop)")
    delete_optuna_study(storage, row.optuna_study_name)
    session.delete(row)
    session.commit()


# -- the scheduler's writes -------------------------------------------------------------------


def active_studies(session: Session) -> Sequence[StudyRow]:
    return session.scalars(select(StudyRow).where(StudyRow.status.in_(ACTIVE))).all()


def mark_running(session: Session, study_id: int) -> datetime:
    """Record that the scheduler runs a study; returns when it (first) started."""
    row = get_study(session, study_id)
    row.status = "running"
    row.started_at = row.started_at or utcnow()
    if row.status_reason and row.status_reason.startswith(WAITING):
        row.status_reason = None
    session.commit()
    return row.started_at


WAITING = "waiting"


def mark_waiting(session: Session, study_id: int, reason: str) -> None:
    """Say why a pending study has not started yet (``reason`` starts with 'waiting')."""
    assert reason.startswith(WAITING)
    row = get_study(session, study_id)
    if row.status_reason != reason:
        row.status_reason = reason
        session.commit()


def mark_finished(session: Session, study_id: int, status: str, reason: str) -> None:
    row = session.get(StudyRow, study_id)
    if row is None:
        return
    row.status, row.status_reason, row.finished_at = status, reason, utcnow()
    row.stop_requested = False
    session.commit()


# -- uploaded datasets ------------------------------------------------------------------------


def create_dataset(
    session: Session, data_dir: Path, name: str, upload: Upload, tenant: str = DEFAULT_TENANT
) -> DatasetRow:
    """Store a checked upload: its file first, then its row; on any error neither remains."""
    dataset_id = new_dataset_id()
    save_upload(data_dir, dataset_id, upload)
    try:
        row = DatasetRow(
            id=dataset_id,
            tenant=tenant,
            name=name,
            filename=upload.filename,
            task=upload.task,
            kind=upload.kind,
            input_shape=list(upload.input_shape),
            n_outputs=upload.n_outputs,
            n_samples=upload.n_samples,
            size_bytes=upload.size_bytes,
            sha256=upload.sha256,
        )
        session.add(row)
        session.commit()
    except BaseException:
        session.rollback()
        remove_upload(data_dir, dataset_id)
        raise
    return row


def get_dataset(session: Session, dataset_id: str, tenant: str | None = None) -> DatasetRow:
    """The dataset ``dataset_id``; for a ``tenant``, only its own (another's is not found)."""
    row = session.get(DatasetRow, dataset_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        raise NotFound(f"dataset {dataset_id} not found")
    return row


def upload_info(session: Session, dataset_id: str, tenant: str | None = None) -> DatasetInfo | None:
    """An uploaded dataset's metadata, as a study sees it (``None`` if there is no such id,
    or it is another tenant's)."""
    row = session.get(DatasetRow, dataset_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        return None
    return DatasetInfo(
        name=row.name,
        task=cast(Task, row.task),
        kind=cast(Kind, row.kind),
        input_shape=tuple(row.input_shape),
        n_outputs=row.n_outputs,
        n_samples=row.n_samples,
    )


def list_datasets(
    session: Session, offset: int, limit: int, tenant: str | None = None
) -> tuple[Sequence[DatasetRow], int]:
    query = select(DatasetRow)
    if tenant is not None:
        query = query.where(DatasetRow.tenant == tenant)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = (DatasetRow.created_at, DatasetRow.id)
    rows = session.scalars(query.order_by(*order).offset(offset).limit(limit))
    return rows.all(), total


def delete_dataset(session: Session, data_dir: Path, row: DatasetRow) -> None:
    """Delete a dataset's row, then its file; 409 while a pending or running study uses it."""
    users = [s.id for s in active_studies(session) if upload_id_of(s.spec) == row.id]
    if users:
        ids = ", ".join(str(i) for i in users)
        raise Conflict(f"dataset {row.id} is used by active studies ({ids}); stop them first")
    session.delete(row)
    session.commit()
    remove_upload(data_dir, row.id)
