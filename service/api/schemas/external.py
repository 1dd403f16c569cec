"""The bodies of external trials' routes: ask, report, tell, renew (docs/external.md)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.api.schemas.base import MAX_INT, Strict
from service.api.schemas.responses import UtcDatetime

Metrics = dict[str, float]
MAX_REPORTED = 32  # metrics in one report
_LEASE = Field(min_length=1, max_length=128, description="The lease token the ask answered.")


class Asked(BaseModel):
    """A trial leased to the caller: evaluate ``params``, report, then tell."""

    number: int
    params: dict[str, Any]
    seed: int = Field(description="For the client's own randomness (the study's seed + number).")
    lease: str = Field(description="Proves the lease in every report, tell and renewal.")
    lease_s: float
    lease_expires_at: UtcDatetime


class ReportIn(Strict):
    lease: str = _LEASE
    step: int = Field(ge=1, le=MAX_INT, description="1, 2, ...: the rung a pruner judges at.")
    metrics: Metrics = Field(min_length=1, max_length=MAX_REPORTED)


class ReportOut(BaseModel):
    should_prune: bool = Field(description="True: the trial is PRUNED now; stop evaluating it.")
    reason: str | None
    lease_expires_at: UtcDatetime


class TellIn(Strict):
    lease: str = _LEASE
    state: Literal["complete", "fail", "pruned"] = "complete"
    metrics: Metrics = Field(
        default_factory=dict,
        max_length=MAX_REPORTED,
        description="The final metrics; a complete trial's hold every objective.",
    )
    reason: str = Field("", max_length=500, description="Why it failed (or was pruned).")


class RenewIn(Strict):
    lease: str = _LEASE


class RenewOut(BaseModel):
    lease_expires_at: UtcDatetime
