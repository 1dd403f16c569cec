"""``/api/v1/quota`` (the caller's tenant) and ``/api/v1/tenants/{tenant}/quota`` (admins):
a tenant's limits and what it holds."""

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import AdminDep, CallerDep, QuotaDep, SessionDep, SettingsDep
from service.api.errors import ADMIN_ERRORS
from service.api.examples import QUOTA_BODY
from service.store import quotas
from service.store.quotas import Quota

router = APIRouter(tags=["quotas"])

Tenant = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]


class QuotaLimits(BaseModel):
    active_studies: int = Field(description="Pending and running studies at once (429 above).")
    trials_in_flight: int = Field(description="Trials in flight at once over all its studies.")
    datasets: int = Field(description="Datasets it may keep (403 above).")
    stored_bytes: int = Field(description="Bytes of uploads it may keep (403 above).")
    weight: float = Field(description="Its share of a full cluster against other tenants'.")


class QuotaUsage(BaseModel):
    active_studies: int
    trials_in_flight: int = Field(description="Its trials running now.")
    datasets: int
    stored_bytes: int


class TenantQuota(BaseModel):
    tenant: str
    limits: QuotaLimits
    usage: QuotaUsage


class QuotaChange(BaseModel):
    """The limits to change; a field sent as null goes back to the service's default."""

    model_config = ConfigDict(extra="forbid")

    active_studies: int | None = Field(None, ge=1, le=1_000_000)
    trials_in_flight: int | None = Field(None, ge=1, le=1_000_000)
    datasets: int | None = Field(None, ge=1, le=1_000_000)
    stored_bytes: int | None = Field(None, ge=1, le=2**50)
    weight: float | None = Field(None, gt=0, le=1000)


def _view(tenant: str, quota: Quota, session: SessionDep) -> TenantQuota:
    usage = quotas.usage_of(session, tenant)
    return TenantQuota(
        tenant=tenant, limits=QuotaLimits(**asdict(quota)), usage=QuotaUsage(**asdict(usage))
    )


@router.get("/quota")
def my_quota(caller: CallerDep, quota: QuotaDep, session: SessionDep) -> TenantQuota:
    """The caller's tenant: its limits and what it holds now."""
    return _view(caller.tenant, quota, session)


@router.get("/tenants/{tenant}/quota", responses=ADMIN_ERRORS)
def tenant_quota(
    tenant: Tenant, _: AdminDep, session: SessionDep, settings: SettingsDep
) -> TenantQuota:
    """Any tenant's limits and usage (admins)."""
    quota = quotas.quota_of(session, tenant, Quota(**settings.quota_defaults()))
    return _view(tenant, quota, session)


@router.put("/tenants/{tenant}/quota", responses=ADMIN_ERRORS)
def set_tenant_quota(
    tenant: Tenant,
    body: Annotated[QuotaChange, QUOTA_BODY],
    _: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
) -> TenantQuota:
    """Set a tenant's limits (admins). Only the fields sent change; null restores the
    default. Studies already running keep running; the new limits apply to what comes next."""
    quotas.set_quota(session, tenant, body.model_dump(exclude_unset=True))
    quota = quotas.quota_of(session, tenant, Quota(**settings.quota_defaults()))
    return _view(tenant, quota, session)
