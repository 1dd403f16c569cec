"""Per-tenant quotas: what a tenant may hold at once, what it holds, and the checks.

A tenant's limits are the settings' defaults (``TUNEFORGE_QUOTA_*``) unless an admin set other
values (``tf_quotas``); its ``weight`` is its share of a full cluster (1 by default: tenants
share alike). Each check raises :class:`~service.errors.OverLimit` naming the limit, the usage
and what to do: 429 where waiting helps (a running study ends), 403 where only the caller or an
admin can change it (delete a dataset, raise the quota).
"""

from dataclasses import dataclass, fields
from typing import Any

from optuna.trial import TrialState
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from search.spec import ACTIVE
from service.errors import OverLimit
from service.store import optuna_sql
from service.store.orm import DatasetRow, QuotaRow, StudyRow


@dataclass(frozen=True)
class Quota:
    """A tenant's limits."""

    active_studies: int
    trials_in_flight: int
    datasets: int
    stored_bytes: int
    weight: float = 1.0


@dataclass(frozen=True)
class Usage:
    """What a tenant holds now."""

    active_studies: int
    trials_in_flight: int
    datasets: int
    stored_bytes: int


QUOTA_FIELDS = tuple(f.name for f in fields(Quota))
USAGE_FIELDS = tuple(f.name for f in fields(Usage))


def quota_of(session: Session, tenant: str, defaults: Quota) -> Quota:
    """``tenant``'s limits: an admin's values where set, else ``defaults``."""
    row = session.get(QuotaRow, tenant)
    if row is None:
        return defaults
    set_values = {name: getattr(row, name) for name in QUOTA_FIELDS}
    return Quota(**{k: v if v is not None else getattr(defaults, k) for k, v in set_values.items()})


def set_quota(session: Session, tenant: str, values: dict[str, Any]) -> None:
    """Set some of ``tenant``'s limits (a None value: back to the default)."""
    row = session.get(QuotaRow, tenant) or QuotaRow(tenant=tenant)
    for name, value in values.items():
        setattr(row, name, value)
    session.add(row)
    session.commit()


def all_quotas(session: Session, defaults: Quota) -> dict[str, Quota]:
    """Every tenant an admin set limits for (the others have ``defaults``)."""
    rows = session.scalars(select(QuotaRow)).all()
    return {row.tenant: quota_of(session, row.tenant, defaults) for row in rows}


def _active_of(tenant: str) -> Select[Any]:
    """The Optuna study names of ``tenant``'s pending and running studies (a query)."""
    return select(StudyRow.optuna_study_name).where(
        StudyRow.tenant == tenant, StudyRow.status.in_(ACTIVE)
    )


def trials_in_flight(session: Session, tenant: str) -> int:
    """``tenant``'s RUNNING trials: on the cluster, and external ones out with their clients."""
    return optuna_sql.trials_in_state_of(session, _active_of(tenant), TrialState.RUNNING)


def usage_of(session: Session, tenant: str) -> Usage:
    active = _active_of(tenant)
    n_active = int(session.scalar(select(func.count()).select_from(active.subquery())) or 0)
    running = trials_in_flight(session, tenant)
    count, size = session.execute(
        select(func.count(), func.coalesce(func.sum(DatasetRow.size_bytes), 0)).where(
            DatasetRow.tenant == tenant
        )
    ).one()
    return Usage(
        active_studies=n_active,
        trials_in_flight=running,
        datasets=int(count),
        stored_bytes=int(size),
    )


def usage_by_tenant(session: Session) -> dict[str, Usage]:
    """Every tenant that holds anything, with what it holds (for /metrics' counts)."""
    tenants = set(session.scalars(select(StudyRow.tenant).distinct()))
    tenants |= set(session.scalars(select(DatasetRow.tenant).distinct()))
    return {tenant: usage_of(session, tenant) for tenant in sorted(tenants)}


def check_parallelism(quota: Quota, parallelism: int) -> None:
    """A study may not ask for more trials at once than its tenant may ever run."""
    if parallelism > quota.trials_in_flight:
        raise OverLimit(
            "trials in flight per tenant",
            quota.trials_in_flight,
            parallelism,
            f"the study asks for parallelism {parallelism}: ask for at most "
            f"{quota.trials_in_flight}, or ask an admin to raise the quota",
            status=403,
        )


def check_new_study(session: Session, tenant: str, quota: Quota, parallelism: int) -> None:
    """Before a study is submitted or resumed."""
    check_parallelism(quota, parallelism)
    active = usage_of(session, tenant).active_studies
    if active >= quota.active_studies:
        raise OverLimit(
            "active studies per tenant",
            quota.active_studies,
            active,
            "wait for a study to finish or stop one (POST /studies/{id}/stop), then retry",
        )


def check_new_dataset(session: Session, tenant: str, quota: Quota, size: int) -> None:
    """Before an upload is stored."""
    usage = usage_of(session, tenant)
    if usage.datasets >= quota.datasets:
        raise OverLimit(
            "datasets per tenant",
            quota.datasets,
            usage.datasets,
            "delete a dataset you no longer need (DELETE /datasets/{id}), or ask an admin to "
            "raise the quota",
            status=403,
        )
    if usage.stored_bytes + size > quota.stored_bytes:
        raise OverLimit(
            "stored bytes per tenant",
            quota.stored_bytes,
            usage.stored_bytes,
            f"this upload adds {size} bytes: delete a dataset, or ask an admin to raise the quota",
            status=403,
        )
