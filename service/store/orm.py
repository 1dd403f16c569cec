"""The service's own tables (prefix ``tf_``); trials live only in Optuna's tables."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


DEFAULT_TENANT = "default"  # the tenant of the first admin key, and of everything without auth


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    """A submitted study: its validated spec and its lifecycle status."""

    __tablename__ = "tf_studies"
    # AUTOINCREMENT on SQLite: a deleted study's id is never handed out again.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, index=True)
    name: Mapped[str] = mapped_column(String(128))
    optuna_study_name: Mapped[str] = mapped_column(String(512), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending → running → completed | failed | stopped
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    stop_requested: Mapped[bool] = mapped_column(default=False)
    # With a stop: let trials in flight finish (True) or cancel them (False).
    stop_drain: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # Bumped by every change of the study's lifecycle or spec: a request writes only if the row
    # still has the version it read (crud's conditional updates), else it answers 409.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The scheduler replica that runs the study (service.store.leases): it holds the study
    # until ``lease_until`` (epoch seconds) and renews it; ``fence`` grows with every new
    # owner, and every write of a run checks it, so a replica that lost the study writes nothing.
    owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_until: Mapped[float | None] = mapped_column(Float, default=None)
    fence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SchedulerRow(Base):
    """A live scheduler replica: how the others know how many share the studies."""

    __tablename__ = "tf_schedulers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    seen_until: Mapped[float] = mapped_column(Float)  # its heartbeat's expiry, epoch seconds
    # The catalog plugins every Ray node of its cluster has (models.plugins.inventory): group →
    # entry → "package version"; None until it has looked.
    plugins: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class QuotaRow(Base):
    """A tenant's limits as an admin set them; a null field takes the settings' default."""

    __tablename__ = "tf_quotas"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    active_studies: Mapped[int | None] = mapped_column(Integer, default=None)
    trials_in_flight: Mapped[int | None] = mapped_column(Integer, default=None)
    datasets: Mapped[int | None] = mapped_column(Integer, default=None)
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    weight: Mapped[float | None] = mapped_column(Float, default=None)  # its share of a full cluster


class DatasetRow(Base):
    """An uploaded dataset; its arrays live in ``<data_dir>/datasets/<id>.npz``."""

    __tablename__ = "tf_datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 12 hex chars of a uuid4
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, index=True)
    name: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str] = mapped_column(String(255))
    task: Mapped[str] = mapped_column(String(16))  # multiclass | binary | regression
    kind: Mapped[str] = mapped_column(String(16))  # tabular | sequence | image
    input_shape: Mapped[list[int]] = mapped_column(JSON)
    n_outputs: Mapped[int] = mapped_column(Integer)
    n_samples: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # of the file as uploaded
    sha256: Mapped[str] = mapped_column(String(64))  # of the file as uploaded
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKeyRow(Base):
    """An API key: only its SHA-256 is stored; the key itself is shown once, at creation."""

    __tablename__ = "tf_api_keys"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(
        String(16)
    )  # the key's first characters, to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class JobRow(Base):
    """Work the API hands to the scheduler (a pre-flight check, an ensemble): the scheduler
    claims a pending job, runs it on Ray and writes its result (:mod:`service.store.jobs`)."""

    __tablename__ = "tf_jobs"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, index=True)
    kind: Mapped[str] = mapped_column(String(32))  # preflight | ensemble
    study_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    # pending → running → done | failed
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    owner: Mapped[str | None] = mapped_column(String(128), default=None)  # the scheduler's
    lease_until: Mapped[float | None] = mapped_column(Float, default=None)  # epoch seconds
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
