"""Engines, migrations and Optuna's storage on one database URL.

Connections are checked before use (``pool_pre_ping``), and Optuna's storage retries every
call that fails on a lost connection or a locked database: a database restart during a study
delays the scheduler's writes instead of losing them.
"""

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import optuna
from alembic import command
from alembic.config import Config
from optuna.distributions import json_to_distribution
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages._rdb import models as rdb_models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import (
    BindParameter,
    Engine,
    Insert,
    Select,
    Update,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from service.trial_queries import local_time

log = logging.getLogger(__name__)
T = TypeVar("T")

_MIGRATIONS = Path(__file__).parent / "migrations"


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # The API's threads read while the scheduler writes: wait for locks instead of failing.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def make_engine(url: str) -> Engine:
    """An engine for the service's tables (SQLite: see :func:`_sqlite_pragmas`)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **_engine_kwargs(url))
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
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
        url, skip_compatibility_check=True, engine_kwargs=_engine_kwargs(url)
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


class RetryingStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose every call survives a database restart of up to
    ``patience_s`` seconds (see :func:`retrying`)."""

    def __init__(self, url: str, patience_s: float = 60.0, **kwargs: Any) -> None:
        self._patience_s = patience_s
        super().__init__(url, **kwargs)

    def set_trial_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Set several user attributes of a trial in one transaction (Optuna's own call
        commits each one alone), with Optuna's rule: a finished trial cannot change."""
        if self.engine.name not in ("sqlite", "postgresql"):
            model = rdb_models.TrialUserAttributeModel
            with _create_scoped_session(self.scoped_session, True) as session:
                for key, value in attrs.items():
                    self._set_trial_attr_without_commit(session, model, trial_id, key, value)
            return
        rows = [
            {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            for key, value in attrs.items()
        ]
        with self.engine.begin() as conn:
            state = conn.execute(_trial_queries().state, {"id": trial_id}).scalar_one_or_none()
            if state is None:
                raise KeyError(rdb_models.NOT_FOUND_MSG)
            self.check_trial_is_updatable(trial_id, state)
            conn.execute(_user_attr_upsert(self.engine.name), rows)

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        """Optuna's trial creation (a RUNNING trial numbered after the study's earlier ones,
        the study row locked meanwhile), in four prepared Core statements instead of the
        ORM; a trial made from a template (``enqueue_trial``, ``add_trial``) goes to Optuna's
        own."""
        if template_trial is not None:
            return super()._create_new_trial(study_id, template_trial)
        q = _trial_queries()
        started = datetime.now(UTC).replace(tzinfo=None)  # Optuna stores naive UTC
        with self.engine.begin() as conn:
            if conn.execute(q.lock_study, {"id": study_id}).one_or_none() is None:
                raise KeyError(rdb_models.NOT_FOUND_MSG)
            inserted = conn.execute(
                q.insert_trial,
                {"study_id": study_id, "state": TrialState.RUNNING, "start": started},
            )
            key = inserted.inserted_primary_key
            assert key is not None
            trial_id = int(key[0])
            counted = conn.execute(q.count_before, {"id": trial_id, "study_id": study_id})
            number = int(counted.scalar_one())
            conn.execute(q.set_number, {"id": trial_id, "number": number})
        return FrozenTrial(
            number=number,
            state=TrialState.RUNNING,
            value=None,
            values=None,
            datetime_start=local_time(started),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=trial_id,
        )

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """Optuna's ``get_trial``, read with six prepared plain queries instead of the ORM's
        lazy loads (the scheduler reads every trial it starts and every trial it finishes:
        half its time per trial went to the ORM)."""
        m = rdb_models
        q = _trial_queries()
        with self.engine.connect() as conn:
            trial = conn.execute(q.trial, {"id": trial_id}).one_or_none()
            if trial is None:
                raise KeyError(m.NOT_FOUND_MSG)
            params = conn.execute(q.params, {"id": trial_id}).all()
            values = conn.execute(q.values, {"id": trial_id}).all()
            attrs = [conn.execute(q.user_attrs, {"id": trial_id}).all()]
            attrs.append(conn.execute(q.system_attrs, {"id": trial_id}).all())
            steps = conn.execute(q.steps, {"id": trial_id}).all()
        value_list: list[float] | None = None
        if values:
            value_list = [0.0] * len(values)
            for objective, value, value_type in values:
                value_list[objective] = m.TrialValueModel.stored_repr_to_value(value, value_type)
        dists = {name: json_to_distribution(dist) for name, _, dist in params}
        return FrozenTrial(
            number=trial.number,
            state=trial.state,
            value=None,
            values=value_list,
            datetime_start=local_time(trial[2]),
            datetime_complete=local_time(trial[3]),
            params={name: dists[name].to_external_repr(value) for name, value, _ in params},
            distributions=dists,
            user_attrs={key: json.loads(v) for key, v in attrs[0]},
            system_attrs={key: json.loads(v) for key, v in attrs[1]},
            intermediate_values={
                step: m.TrialIntermediateValueModel.stored_repr_to_intermediate_value(v, kind)
                for step, v, kind in steps
            },
            trial_id=trial_id,
        )

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name.startswith("_") or not inspect.ismethod(value) or name in _NOT_RETRIED:
            return value
        return retrying(value, super().__getattribute__("_patience_s"), name)


@dataclass(frozen=True)
class _TrialQueries:
    lock_study: Select[Any]
    insert_trial: Insert
    count_before: Select[Any]
    set_number: Update
    state: Select[Any]
    trial: Select[Any]
    params: Select[Any]
    values: Select[Any]
    user_attrs: Select[Any]
    system_attrs: Select[Any]
    steps: Select[Any]


@functools.cache
def _trial_queries() -> _TrialQueries:
    """The statements :meth:`RetryingStorage.get_trial` runs, built once (building them costs
    more than running them), each of one bound ``id``."""
    m = rdb_models
    trial_id: BindParameter[int] = bindparam("id")
    trials = m.TrialModel
    return _TrialQueries(
        lock_study=select(m.StudyModel.study_id)
        .where(m.StudyModel.study_id == trial_id)
        .with_for_update(),
        insert_trial=insert(trials).values(
            study_id=bindparam("study_id"),
            number=None,
            state=bindparam("state"),
            _datetime_start_utc=bindparam("start"),
        ),
        count_before=select(func.count(trials.trial_id)).where(
            trials.study_id == bindparam("study_id"), trials.trial_id < trial_id
        ),
        set_number=update(trials)
        .where(trials.trial_id == trial_id)
        .values(number=bindparam("number")),
        state=select(m.TrialModel.state).where(m.TrialModel.trial_id == trial_id),
        trial=select(
            m.TrialModel.number,
            m.TrialModel.state,
            m.TrialModel._datetime_start_utc,
            m.TrialModel._datetime_complete_utc,
        ).where(m.TrialModel.trial_id == trial_id),
        params=select(
            m.TrialParamModel.param_name,
            m.TrialParamModel.param_value,
            m.TrialParamModel.distribution_json,
        )
        .where(m.TrialParamModel.trial_id == trial_id)
        .order_by(m.TrialParamModel.param_id),
        values=select(
            m.TrialValueModel.objective, m.TrialValueModel.value, m.TrialValueModel.value_type
        ).where(m.TrialValueModel.trial_id == trial_id),
        user_attrs=select(
            m.TrialUserAttributeModel.key, m.TrialUserAttributeModel.value_json
        ).where(m.TrialUserAttributeModel.trial_id == trial_id),
        system_attrs=select(
            m.TrialSystemAttributeModel.key, m.TrialSystemAttributeModel.value_json
        ).where(m.TrialSystemAttributeModel.trial_id == trial_id),
        steps=select(
            m.TrialIntermediateValueModel.step,
            m.TrialIntermediateValueModel.intermediate_value,
            m.TrialIntermediateValueModel.intermediate_value_type,
        ).where(m.TrialIntermediateValueModel.trial_id == trial_id),
    )


@functools.cache
def _user_attr_upsert(dialect: str) -> Insert:
    """Insert-or-update of user attributes (rows of trial_id, key, value_json), built once."""
    model = rdb_models.TrialUserAttributeModel
    insert = (sqlite_dialect if dialect == "sqlite" else pg_dialect).insert(model)
    upsert: Insert = insert.on_conflict_do_update(
        index_elements=[model.trial_id, model.key],
        set_={"value_json": insert.excluded.value_json},
    )
    return upsert


# Calls that must not run twice: a retried create could add a second study or trial.
_NOT_RETRIED = frozenset({"create_new_study", "create_new_trial", "upgrade", "remove_session"})


def make_storage(url: str, patience_s: float = 60.0) -> optuna.storages.RDBStorage:
    """Optuna's storage on the same database; it creates and migrates Optuna's own tables."""
    storage = RetryingStorage(url, patience_s, engine_kwargs=_engine_kwargs(url))
    if url.startswith("sqlite"):
        event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # connections opened while Optuna checked its schema
    return storage
