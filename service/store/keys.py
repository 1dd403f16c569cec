"""API keys and tenants.

Every request to ``/api/v1`` carries an API key (``Authorization: Bearer <key>`` or
``X-API-Key: <key>``). A key belongs to a tenant; a tenant sees and controls only its own
studies and datasets (another tenant's ids answer 404, as if they did not exist). Admin keys
also create, list and revoke keys. Keys are 43 random URL-safe characters after ``tf_``; only
their SHA-256 is stored (a key is random, not a password: a slow hash would add nothing).

On first start, when no admin key exists, the service creates one and writes it to
``<DATA_DIR>/admin.key`` (mode 0600), where the CLI finds it: the quickstart stays two
commands. ``TUNEFORGE_AUTH=false`` switches authentication off (every caller is the admin of
the default tenant); nothing else does.
"""

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from search.datadir import DataDir
from service.errors import NotFound
from service.store.orm import DEFAULT_TENANT, ApiKeyRow, utcnow

log = logging.getLogger(__name__)

KEY_PREFIX = "tf_"


@dataclass(frozen=True)
class Caller:
    """Who sends a request: the tenant it acts for, and whether it may manage keys."""

    tenant: str
    admin: bool
    key_id: int | None = None


ANONYMOUS_ADMIN = Caller(DEFAULT_TENANT, admin=True)  # every caller when auth is off


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(session: Session, tenant: str, name: str, admin: bool) -> tuple[ApiKeyRow, str]:
    """Store a new key for ``tenant``; returns its row and the key (shown only now)."""
    key = new_key()
    row = ApiKeyRow(tenant=tenant, name=name, prefix=key[:10], key_hash=hash_key(key), admin=admin)
    session.add(row)
    session.commit()
    return row, key


def list_keys(session: Session) -> Sequence[ApiKeyRow]:
    return session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)).all()


def revoke_key(session: Session, key_id: int) -> ApiKeyRow:
    """Revoke a key at once (revoking twice changes nothing)."""
    row = session.get(ApiKeyRow, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    row.revoked_at = row.revoked_at or utcnow()
    session.commit()
    return row


def key_active(session: Session, key_id: int) -> bool:
    """Whether the key with id ``key_id`` exists and is not revoked."""
    row = session.get(ApiKeyRow, key_id)
    return row is not None and row.revoked_at is None


def caller_for(session: Session, key: str) -> Caller | None:
    """The caller a key stands for, or None for an unknown or revoked key."""
    if not key.startswith(KEY_PREFIX):
        return None
    digest = hash_key(key)
    row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, digest):  # the lookup matched; keep it constant
        return None
    return Caller(row.tenant, row.admin, row.id)


def ensure_admin_key(session: Session, data_dir: DataDir) -> Path | None:
    """On first start, create an admin key and write it to ``<DATA_DIR>/admin.key`` (0600).

    Returns the file when a key was created, None when an active admin key already exists.
    """
    active = session.scalar(
        select(ApiKeyRow).where(ApiKeyRow.admin.is_(True), ApiKeyRow.revoked_at.is_(None))
    )
    if active is not None:
        return None
    _, key = create_key(session, DEFAULT_TENANT, "admin (created on first start)", admin=True)
    path = data_dir.admin_key
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    log.warning("created an admin API key in %s (mode 0600)", path)
    return path
