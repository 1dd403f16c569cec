"""``/api/v1/datasets``: upload, list, inspect and delete user datasets."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, status

from models.data import Task
from service.api.deps import CallerDep, Offset, QuotaDep, SessionDep, SettingsDep
from service.api.errors import CONFLICT, QUOTA_REFUSED
from service.api.schemas.responses import DatasetPage, DatasetPublic
from service.errors import SpecInvalid
from service.store import crud
from service.store.quotas import check_new_dataset
from service.store.uploads import NAME_PATTERN, dataset_name, parse_upload

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=QUOTA_REFUSED)
def upload_dataset(
    caller: CallerDep,
    quota: QuotaDep,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="A .npz with arrays x and y, or a .csv.")],
    name: Annotated[
        str | None, Form(pattern=NAME_PATTERN.pattern, description="Default: the file's stem.")
    ] = None,
    task: Annotated[Task | None, Form(description="Default: inferred from the labels.")] = None,
    target: Annotated[
        str | None, Form(description="CSV label column; default target, label or the last.")
    ] = None,
) -> DatasetPublic:
    """Upload a dataset (multipart); studies then train on it by its id. 403 when the
    tenant keeps its quota of datasets or of stored bytes already."""
    if not file.filename:
        raise SpecInvalid([(("file",), "the upload has no file name (.npz or .csv)")])
    name = dataset_name(file.filename, name)
    # A sync route runs in a worker thread: reading and parsing here keep the event loop free.
    upload = parse_upload(file.filename, file.file.read(), task=task, target=target)
    check_new_dataset(session, caller.tenant, quota, upload.size_bytes)
    row = crud.create_dataset(session, settings.paths, name, upload, caller.tenant)
    return DatasetPublic.model_validate(row)


@router.get("")
def list_datasets(
    caller: CallerDep,
    session: SessionDep,
    offset: Offset = 0,
    limit: int = Query(50, ge=1, le=500),
) -> DatasetPage:
    rows, total = crud.list_datasets(session, offset, limit, caller.tenant)
    items = [DatasetPublic.model_validate(r) for r in rows]
    return DatasetPage(items=items, total=total, offset=offset, limit=limit)


@router.get("/{dataset_id}")
def get_dataset(dataset_id: str, caller: CallerDep, session: SessionDep) -> DatasetPublic:
    return DatasetPublic.model_validate(crud.get_dataset(session, dataset_id, caller.tenant))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=CONFLICT)
def delete_dataset(
    dataset_id: str, caller: CallerDep, session: SessionDep, settings: SettingsDep
) -> None:
    """Delete a dataset and its file (409 while a pending or running study uses it)."""
    row = crud.get_dataset(session, dataset_id, caller.tenant)
    crud.delete_dataset(session, settings.paths, row)
