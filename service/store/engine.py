"""Engines and migrations on one database URL, and what a passing database failure is.

Connections are checked before use (``pool_pre_ping``); :func:`retrying` tries a call again
while it fails on a lost connection or a locked database, so a database restart during a study
delays the scheduler's writes instead of losing them.
"""

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
from alembic import command
from alembic.config import Config
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)
T = TypeVar("T")

_MIGRATIONS = Path(__file__).parent / "migrations"


def engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # The API's threads read while the scheduler writes: wait for locks instead of failing.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def make_engine(url: str) -> Engine:
    """An engine for the service's tables (SQLite: see :func:`_sqlite_pragmas`)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **engine_kwargs(url))
    if url.startswith("sqlite"):
        event.listen(engine, "connect", sqlite_pragmas)
    return engine


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL, so readers (the API) never block the writer (the scheduler), and in WAL mode
    ``synchronous=NORMAL``: a commit is not flushed to disk on its own, only at checkpoints.
    The database stays consistent after a crash of the process or the machine; a power loss may
    lose the last commits, which a restarted scheduler treats like any interrupted trial."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def migrate(engine: Engine) -> None:
    """Bring the ``tf_`` tables to the newest revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def migrate_all(url: str) -> str:
    """Bring Optuna's tables and the service's to their newest revisions (idempotent); returns
    what was done, in a line. Run once before the API and the scheduler start on a cluster."""
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    # Optuna's storage creates its tables when they are missing; an older schema is upgraded.
    storage = optuna.storages.RDBStorage(
        url, skip_compatibility_check=True, engine_kwargs=engine_kwargs(url)
    )
    try:
        before = storage.get_current_version()
        if before != storage.get_head_version():
            storage.upgrade()
        return f"optuna schema {storage.get_current_version()} (was {before}); tf_ tables at head"
    finally:
        storage.remove_session()
        storage.engine.dispose()


def transient(exc: BaseException) -> bool:
    """Whether a database error may pass if tried again: a dropped or refused connection (the
    server restarts), a locked SQLite file. Optuna wraps them in StorageInternalError."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        if isinstance(seen, sa_exc.DisconnectionError):
            return True
        seen = seen.__cause__
    return False


def retrying(call: Callable[..., T], patience_s: float, name: str) -> Callable[..., T]:
    """``call``, tried again with backoff (0.1 s doubling to 5 s) while it fails transiently,
    for up to ``patience_s`` seconds; then the last error is raised."""

    @functools.wraps(call)
    def attempt(*args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + patience_s
        delay, tries = 0.1, 0
        while True:
            try:
                return call(*args, **kwargs)
            except UpdateFinishedTrialError:
                if tries and name == "set_trial_state_values":
                    # The attempt that seemed to fail had committed before its connection
                    # dropped: the trial is finished already.
                    return True  # type: ignore[return-value]
                raise
            except (StorageInternalError, sa_exc.SQLAlchemyError) as exc:
                if not transient(exc) or time.monotonic() + delay > deadline:
                    raise
                tries += 1
                log.warning(
                    "database call %s failed (%s); retry %d in %.1f s", name, exc, tries, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    return attempt
