"""Every write to the ``tf_`` tables, and the Optuna study that goes with each row."""

import uuid
import warnings
from collections.abc import Container, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any, cast

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models.data import DatasetInfo, Kind, Task
from search import attrs, optuna_artifacts
from search.datadir import DataDir
from search.document import from_document, task_of, to_document
from search.space import to_distribution
from search.spec import ACTIVE, FINISHED, Budget, StudySpec, StudyStatus
from service.errors import Conflict, NotFound
from service.store import optuna_sql
from service.store.leases import Lease, LeaseLost, held
from service.store.orm import DEFAULT_TENANT, DatasetRow, JobRow, StudyRow, utcnow
from service.store.uploads import Upload, new_dataset_id, remove_upload, save_upload


def create_study(
    session: Session, storage: RDBStorage, spec: StudySpec, tenant: str = DEFAULT_TENANT
) -> StudyRow:
    """Create the Optuna study, then the row that owns it (holding the study's document);
    on any error neither remains."""
    optuna_name = f"{spec.name}-{uuid.uuid4().hex[:8]}"
    document = to_document(spec)
    # The Optuna study first: on SQLite an open write transaction here would lock out
    # Optuna's own connection.
    study = optuna.create_study(
        storage=storage, study_name=optuna_name, directions=list(spec.directions)
    )
    try:
        with warnings.catch_warnings():  # experimental since 3.2, and what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.metric for o in spec.objectives])
        _warm_start(session, storage, study, spec)
        attrs.record_spec(study, spec, document)
        row = StudyRow(
            tenant=tenant,
            name=spec.name,
            optuna_study_name=optuna_name,
            spec=document,
            status=StudyStatus.PENDING,
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
    session: Session, storage: RDBStorage, study: optuna.Study, spec: StudySpec
) -> None:
    """Queue the given points first; copy the finished trials of another study whose
    parameters fit this space, so the sampler starts from what is already known (with what
    tuneforge recorded of each: :mod:`search.attrs`)."""
    for point in spec.warm_start.points:
        study.enqueue_trial(dict(point), user_attrs={"warm_start": "point"})
    if spec.warm_start.from_study is None:
        return
    source = get_study(session, spec.warm_start.from_study)
    space = {p.name: p for p in spec.search_space}
    copied = [
        optuna.trial.create_trial(
            params=t.params,
            distributions={k: to_distribution(space[k]) for k in t.params},
            values=t.values,
            intermediate_values=t.intermediate_values,
            user_attrs={**t.user_attrs, "warm_start": f"study {source.id} trial {t.number}"},
            system_attrs={k: v for k, v in t.system_attrs.items() if k.startswith(attrs.PREFIX)},
        )
        for t in load_trials(storage, source.optuna_study_name)
        if t.state == TrialState.COMPLETE
        and all(k in space and space[k].contains(v) for k, v in t.params.items())
    ]
    study.add_trials(copied)


def study_spec(row: StudyRow) -> StudySpec:
    """The study a row holds (its stored document, read leniently)."""
    return from_document(row.spec)


def study_directions(
    session: Session, study_id: int, tenant: str | None = None
) -> list[str] | None:
    """A study's objective directions (None if there is no such study of ``tenant``), for
    warm starts."""
    row = session.get(StudyRow, study_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        return None
    return list(study_spec(row).directions)


def _optuna_id(storage: RDBStorage, name: str) -> int | None:
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        return None


def load_trials(
    storage: RDBStorage, optuna_study_name: str, states: Container[TrialState] | None = None
) -> list[FrozenTrial]:
    """Every trial of a study (or those in ``states``), oldest first (empty if the Optuna
    study is gone). It reads the whole study: what a request shows comes from
    :mod:`service.store.optuna_sql` instead."""
    sid = _optuna_id(storage, optuna_study_name)
    return [] if sid is None else storage.get_all_trials(sid, deepcopy=False, states=states)


def delete_optuna_study(storage: RDBStorage, name: str) -> None:
    if _optuna_id(storage, name) is not None:
        optuna.delete_study(study_name=name, storage=storage)


def get_study(session: Session, study_id: int, tenant: str | None = None) -> StudyRow:
    """The study ``study_id``; for a ``tenant``, only its own (another's is not found)."""
    row = session.get(StudyRow, study_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        raise NotFound(f"study {study_id} not found")
    return row


def list_studies(
    session: Session,
    offset: int,
    limit: int,
    tenant: str | None = None,
    status: str | None = None,
) -> tuple[Sequence[StudyRow], int]:
    query = select(StudyRow)
    if tenant is not None:
        query = query.where(StudyRow.tenant == tenant)
    if status is not None:
        query = query.where(StudyRow.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(StudyRow.id).offset(offset).limit(limit))
    return rows.all(), total


# A request's changes are conditional updates: each applies only to the row as the request read
# it (its ``version``) and bumps the version, so two requests that race either both apply (one
# after the other) or one answers 409; none is silently lost.


def _changed(row: StudyRow) -> Conflict:
    return Conflict(f"study {row.id} changed while this request ran; read it again and retry")


def _update(session: Session, row: StudyRow, **values: Any) -> StudyRow:
    """Write ``values`` to ``row`` if it still has the version it was read with."""
    _conditionally(session, row, update(StudyRow).values(version=row.version + 1, **values))
    session.refresh(row)
    return row


def _conditionally(session: Session, row: StudyRow, statement: Any) -> None:
    """Run an UPDATE or DELETE of ``row`` only where it still has the version it was read
    with, and commit; 409 (nothing changed) otherwise."""
    done = session.execute(
        statement.where(StudyRow.id == row.id, StudyRow.version == row.version).execution_options(
            synchronize_session=False
        )
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise _changed(row)
    session.commit()


def request_stop(session: Session, row: StudyRow, drain: bool = False) -> StudyRow:
    """Ask the scheduler to stop a study: cancel its trials in flight, or with ``drain`` let
    them finish and start no more. One UPDATE of a still active row (it depends on nothing
    else the request read): no 409; a study finished meanwhile is answered as it is."""
    if row.status in ACTIVE:
        session.execute(
            update(StudyRow)
            .where(StudyRow.id == row.id, StudyRow.status.in_(ACTIVE))
            .values(stop_requested=True, stop_drain=drain, version=StudyRow.version + 1)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        session.refresh(row)
    return row


def patch_study(
    session: Session,
    row: StudyRow,
    budget: Mapping[str, Any] | None = None,
    parallelism: int | None = None,
) -> StudyRow:
    """Change budget fields or parallelism. A new budget on a finished study resumes it."""
    spec = study_spec(row)
    if budget is not None:
        spec = replace(spec, budget=Budget(**{**asdict(spec.budget), **budget}))
    if parallelism is not None:
        spec = replace(spec, parallelism=parallelism)
    values: dict[str, Any] = {"spec": to_document(spec)}
    if budget is not None and row.status in FINISHED:
        values.update(status=StudyStatus.PENDING, status_reason="resumed with a new budget")
        values.update(stop_requested=False, stop_drain=False, started_at=None, finished_at=None)
    return _update(session, row, **values)


def delete_study(session: Session, storage: RDBStorage, data_dir: DataDir, row: StudyRow) -> None:
    """Delete a finished study with all its trials, then its models, checkpoints and files in
    Optuna's artifact store. The row goes first, and only as it was read (finished): a study
    resumed meanwhile is a 409 and keeps everything."""
    if row.status in ACTIVE:
        raise Conflict(f"study {row.id} is {row.status}; stop it first (POST .../stop)")
    name = row.optuna_study_name
    _conditionally(session, row, delete(StudyRow))
    session.execute(delete(JobRow).where(JobRow.study_id == row.id))  # its ensembles
    session.commit()
    uploaded = _artifact_ids(session, storage, name)  # named by the trials about to go
    delete_optuna_study(storage, name)
    optuna_artifacts.remove(optuna_artifacts.artifact_store(data_dir), uploaded)
    data_dir.remove_study(name)


def _artifact_ids(session: Session, storage: RDBStorage, name: str) -> list[str]:
    """The ids of the Optuna artifacts of a study and its trials (those the scheduler and
    optuna-dashboard's users uploaded)."""
    sid = _optuna_id(storage, name)
    if sid is None:
        return []
    own = [k.rsplit(":", 1)[1] for k in storage.get_study_system_attrs(sid) if "artifacts:" in k]
    return optuna_sql.artifact_ids(session, sid) + own


# -- the scheduler's writes -------------------------------------------------------------------


def active_studies(session: Session) -> Sequence[StudyRow]:
    return session.scalars(select(StudyRow).where(StudyRow.status.in_(ACTIVE))).all()


def mark_running(
    session: Session, study_id: int, started_at: datetime, lease: Lease | None = None
) -> datetime:
    """Record that the scheduler runs a study (first started at ``started_at`` unless it
    started before); returns when it first started. Raises LeaseLost where ``lease`` no longer
    holds (the study has another scheduler)."""
    row = get_study(session, study_id)
    started = row.started_at or started_at
    values: dict[str, Any] = {"status": StudyStatus.RUNNING, "started_at": started}
    if row.status_reason and row.status_reason.startswith(WAITING):
        values["status_reason"] = None
    _scheduler_write(session, study_id, lease, values)
    return started


WAITING = "waiting"


def mark_waiting(session: Session, study_id: int, reason: str, lease: Lease | None = None) -> None:
    """Say why a pending study has not started yet (``reason`` starts with 'waiting')."""
    assert reason.startswith(WAITING)
    row = get_study(session, study_id)
    if row.status_reason != reason:
        _scheduler_write(session, study_id, lease, {"status_reason": reason}, bump=False)


def mark_finished(
    session: Session,
    study_id: int,
    status: StudyStatus,
    reason: str,
    lease: Lease | None = None,
) -> None:
    values = {"status": status, "status_reason": reason, "finished_at": utcnow()}
    _scheduler_write(session, study_id, lease, {**values, "stop_requested": False})


def _scheduler_write(
    session: Session,
    study_id: int,
    lease: Lease | None,
    values: dict[str, Any],
    bump: bool = True,
) -> None:
    """A write of the scheduler's: only while its ``lease`` holds (LeaseLost otherwise); a
    lifecycle change bumps the version, so a request that read the row before answers 409."""
    if bump:
        values = {**values, "version": StudyRow.version + 1}
    done = session.execute(
        update(StudyRow)
        .where(StudyRow.id == study_id, *held(lease))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if lease is not None and done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise LeaseLost(f"study {study_id} has another scheduler now")
    session.commit()


# -- uploaded datasets ------------------------------------------------------------------------


def create_dataset(
    session: Session, data_dir: DataDir, name: str, upload: Upload, tenant: str = DEFAULT_TENANT
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


def delete_dataset(session: Session, data_dir: DataDir, row: DatasetRow) -> None:
    """Delete a dataset's row, then its file; 409 while a pending or running study uses it."""
    users = [s.id for s in active_studies(session) if _upload_of(s) == row.id]
    if users:
        ids = ", ".join(str(i) for i in users)
        raise Conflict(f"dataset {row.id} is used by active studies ({ids}); stop them first")
    session.delete(row)
    session.commit()
    remove_upload(data_dir, row.id)


def _upload_of(row: StudyRow) -> str | None:
    """The upload a study trains on, if any (read from its task alone: nothing else of a
    stored study decides it)."""
    try:
        task = task_of(row.spec["task"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return None if task.dataset is None else task.dataset.upload_id
