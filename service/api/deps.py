"""Dependencies injected into routes, as ``Annotated`` aliases."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from optuna.storages import RDBStorage
from sqlalchemy.orm import Session

from service.api.schemas.base import MAX_INT
from service.config import Settings
from service.errors import Forbidden, Unauthorized
from service.scheduling.scheduler import Scheduler
from service.store.keys import ANONYMOUS_ADMIN, Caller, caller_for
from service.store.quotas import Quota, quota_of


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


def release(session: Session) -> None:
    """End a dependency's read: its connection goes back to the pool now.

    FastAPI runs each sync dependency and the route in separate threadpool steps. A connection
    held from one step to the next deadlocks under load: every pool thread blocks waiting for a
    connection while the connections belong to requests waiting for a thread (found by
    ``benchmarks/load.py``: 40 of 40 threads in ``QueuePool._do_get``, 500s after 30 s).
    """
    session.rollback()


def _storage(request: Request) -> RDBStorage:
    return request.app.state.storage  # type: ignore[no-any-return]


def _scheduler(request: Request) -> Scheduler | None:
    return request.app.state.scheduler  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
StorageDep = Annotated[RDBStorage, Depends(_storage)]
SchedulerDep = Annotated[Scheduler | None, Depends(_scheduler)]


# auto_error=False: a missing key is our 401 (with a sentence), not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Or X-API-Key: <key>")


def _caller(
    request: Request,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> Caller:
    settings: Settings = request.app.state.settings
    if not settings.auth:
        return ANONYMOUS_ADMIN
    key = bearer.credentials if bearer is not None else header
    if not key:
        raise Unauthorized("an API key is required: Authorization: Bearer <key>")
    caller = caller_for(session, key)
    release(session)
    if caller is None:
        raise Unauthorized("unknown or revoked API key")
    return caller


def _admin(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
    if not caller.admin:
        raise Forbidden("this route needs an admin API key")
    return caller


CallerDep = Annotated[Caller, Depends(_caller)]


def _quota(caller: CallerDep, session: SessionDep, settings: SettingsDep) -> Quota:
    """The caller's tenant's limits."""
    return quota_of(session, caller.tenant, Quota(**settings.quota_defaults()))


QuotaDep = Annotated[Quota, Depends(_quota)]
require_caller = _caller
AdminDep = Annotated[Caller, Depends(_admin)]


Id = Annotated[int, Path(ge=0, le=MAX_INT)]
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]
