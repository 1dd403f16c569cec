"""Dependencies injected into routes, as ``Annotated`` aliases."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from optuna.storages import RDBStorage
from sqlalchemy.orm import Session

from service.config import Settings
from service.scheduler import Scheduler


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


def _storage(request: Request) -> RDBStorage:
    return request.app.state.storage  # type: ignore[no-any-return]


def _scheduler(request: Request) -> Scheduler | None:
    return request.app.state.scheduler  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[Session, Depends(_session)]
StorageDep = Annotated[RDBStorage, Depends(_storage)]
SchedulerDep = Annotated[Scheduler | None, Depends(_scheduler)]
