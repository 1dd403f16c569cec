"""Shared by the service tests: a migrated database (SQLite and PostgreSQL) with Optuna's
storage on it."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from optuna.storages import RDBStorage
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.store.engine import make_engine, migrate
from service.store.storage import make_storage


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@dataclass
class Db:
    engine: Engine
    sessions: sessionmaker[Session]
    storage: RDBStorage


@pytest.fixture
def db(database_url: str) -> Iterator[Db]:
    engine = make_engine(database_url)
    migrate(engine)
    storage = make_storage(database_url)
    yield Db(engine, sessionmaker(engine, expire_on_commit=False), storage)
    storage.remove_session()
    storage.engine.dispose()
    engine.dispose()
