"""Prometheus metrics of what the database knows, read at scrape time.

:class:`DatabaseCollector` reads trials by state, studies by status, the queues and the
durations of finished trials from the database at each scrape, with a few ``GROUP BY``
queries (:mod:`service.store.optuna_sql`). The API serves them (``GET /metrics``); they survive
restarts and count the work of every scheduler that writes to the database. What only the
scheduler knows is in :mod:`service.scheduling.metrics`; :func:`render` serves both when the
scheduler runs in the API's process. Only aggregates are exposed: no study, tenant or
parameter appears in a label.
"""

import logging
from collections.abc import Iterator

from optuna.trial import TrialState
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from search.spec import ACTIVE, StudyStatus
from service.store import optuna_sql, quotas
from service.store.orm import StudyRow
from service.store.quotas import USAGE_FIELDS, Quota

log = logging.getLogger(__name__)

# The text exposition format every Prometheus reads (what prometheus_client's own server sends
# to a scraper that asks for nothing newer).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")
STUDY_STATUSES = tuple(StudyStatus)

# Seconds: trials last from about a second (a small MLP) to hours (a CNN on a GPU).
DURATION_BUCKETS: tuple[float, ...] = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
DURATION_BUCKETS += (3600.0, 7200.0, 21600.0, 86400.0)


class DatabaseCollector(Collector):
    """Reads the service's figures from the database at every scrape.

    Args:
        sessions: the app's sessionmaker (its engine reaches both Optuna's and the ``tf_``
            tables).
    """

    def __init__(self, sessions: sessionmaker[Session], quota: Quota | None = None) -> None:
        self._sessions = sessions
        self._quota = quota

    def collect(self) -> Iterator[Metric]:
        """Yield the figures, or only ``tuneforge_database_up 0`` if the database fails."""
        try:
            with self._sessions() as session:
                families = [
                    _trials_by_state(session),
                    *_studies_and_queues(session),
                    *_tenants(session, self._quota),
                    _trial_durations(session),
                ]
        except SQLAlchemyError as exc:
            log.warning("metrics: cannot read the database: %s", exc)
            families = []
        up = GaugeMetricFamily(
            "tuneforge_database_up", "Whether the last scrape could read the database (1 or 0)."
        )
        up.add_metric([], 1 if families else 0)
        yield up
        yield from families


def _trials_by_state(session: Session) -> Metric:
    counts = optuna_sql.trials_by_state(session)
    family = GaugeMetricFamily(
        "tuneforge_trials", "Trials in the database by Optuna state.", labels=["state"]
    )
    for state, n in counts.items():
        family.add_metric([state], n)
    return family


def _studies_and_queues(session: Session) -> list[Metric]:
    by_status: dict[str, int] = dict.fromkeys(STUDY_STATUSES, 0)
    queued_studies = 0
    rows = session.execute(
        select(StudyRow.status, StudyRow.stop_requested, func.count()).group_by(
            StudyRow.status, StudyRow.stop_requested
        )
    ).tuples()
    for status, stop_requested, n in rows:
        by_status[status] = by_status.get(status, 0) + int(n)
        if status == StudyStatus.PENDING and not stop_requested:
            queued_studies += int(n)
    studies = GaugeMetricFamily(
        "tuneforge_studies", "Studies submitted to the service by status.", labels=["status"]
    )
    for status, n in by_status.items():
        studies.add_metric([status], n)

    # Enqueued points (warm start) are Optuna trials in state WAITING: the study's next asks
    # take them as its trials in flight finish. Those of ended studies will never run.
    active = select(StudyRow.optuna_study_name).where(StudyRow.status.in_(ACTIVE))
    queued_trials = optuna_sql.trials_in_state_of(session, active, TrialState.WAITING)
    return [
        studies,
        GaugeMetricFamily(
            "tuneforge_queued_studies",
            "Studies waiting for the scheduler to start them (pending, no stop requested).",
            value=queued_studies,
        ),
        GaugeMetricFamily(
            "tuneforge_queued_trials",
            "Trials of pending or running studies queued in Optuna (WAITING) for a free slot.",
            value=int(queued_trials or 0),
        ),
    ]


def _tenants(session: Session, defaults: Quota | None) -> list[Metric]:
    """What tenants hold, as counts: no tenant is named."""
    usage = quotas.usage_by_tenant(session)
    limits = (
        {t: quotas.quota_of(session, t, defaults) for t in usage} if defaults is not None else {}
    )
    holding = GaugeMetricFamily(
        "tuneforge_tenants", "Tenants holding any of each kind of quota'd thing.", labels=["quota"]
    )
    most = GaugeMetricFamily(
        "tuneforge_tenant_usage_max", "The largest usage of any one tenant.", labels=["quota"]
    )
    at_limit = GaugeMetricFamily(
        "tuneforge_tenants_at_limit", "Tenants at their quota (new work refused).", labels=["quota"]
    )
    for name in USAGE_FIELDS:
        values = {t: getattr(u, name) for t, u in usage.items()}
        holding.add_metric([name], sum(v > 0 for v in values.values()))
        most.add_metric([name], max(values.values(), default=0))
        full = sum(values[t] >= getattr(limits[t], name) for t in limits)
        at_limit.add_metric([name], full)
    return [holding, most, at_limit]


def _trial_durations(session: Session) -> Metric:
    """Per finished state, the count, the sum and every bucket of the durations."""
    family = HistogramMetricFamily(
        "tuneforge_trial_duration_seconds",
        "Wall-clock time of finished trials (start to end, as Optuna recorded them), by state.",
        labels=["state"],
    )
    counted = optuna_sql.duration_histogram(session, DURATION_BUCKETS)
    for state in FINISHED_STATES:
        cumulative, total = counted.get(state, ([0] * (len(DURATION_BUCKETS) + 1), 0.0))
        bounds = [*(_le(b) for b in DURATION_BUCKETS), "+Inf"]
        family.add_metric([state], list(zip(bounds, cumulative, strict=True)), total)
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


def render(
    sessions: sessionmaker[Session],
    scheduler: CollectorRegistry | None,
    quota: Quota | None = None,
) -> bytes:
    """The API's ``/metrics`` body: the database's figures, and the scheduler's (its registry)
    when it runs in this process. ``quota``: the default limits (tenants at their limit)."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(sessions, quota))
    if scheduler is not None:
        registry.register(scheduler)
    return generate_latest(registry)
