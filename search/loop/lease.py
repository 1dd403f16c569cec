"""A trial's lease: which client holds it and until when, kept in the trial's system
attributes (so it lives and dies with the trial, in Optuna's tables)."""

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

KEY = "tf:lease"


@dataclass(frozen=True)
class Lease:
    """``digest``: the SHA-256 of the client's token (the token itself is never stored);
    ``expires``: epoch seconds; ``lease_s``: how long a renewal extends it."""

    digest: str
    expires: float
    lease_s: float

    def holds(self, token: str) -> bool:
        """Whether ``token`` is this lease's."""
        return secrets.compare_digest(self.digest, digest(token))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


def grant(storage: BaseStorage, trial_id: int, token: str, lease_s: float) -> Lease:
    """Lease trial ``trial_id`` to the holder of ``token`` for ``lease_s`` seconds."""
    return renew(storage, trial_id, Lease(digest(token), 0.0, lease_s))


def renew(storage: BaseStorage, trial_id: int, lease: Lease) -> Lease:
    """The lease extended to ``lease_s`` from now, written."""
    renewed = Lease(lease.digest, time.time() + lease.lease_s, lease.lease_s)
    value: dict[str, Any] = {"digest": renewed.digest, "expires": renewed.expires}
    value["lease_s"] = renewed.lease_s
    storage.set_trial_system_attr(trial_id, KEY, value)
    return renewed


def lease_of(trial: FrozenTrial, lease_s: float) -> Lease:
    """A RUNNING trial's lease. One asked a moment ago whose lease is not written yet is
    leased from its start (the window between creating a trial and writing its lease)."""
    raw = trial.system_attrs.get(KEY)
    if isinstance(raw, dict):
        return Lease(str(raw["digest"]), float(raw["expires"]), float(raw["lease_s"]))
    start = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
    return Lease("", start + lease_s, lease_s)
