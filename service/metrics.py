"""Prometheus metrics: what the database knows, read at scrape time, and what the scheduler knows.

Two sources, so that every figure is right whichever process runs the scheduler:

- :class:`DatabaseCollector` reads trials by state, studies by status, the queues and the
  durations of finished trials from the database at each scrape, with a few ``GROUP BY``
  queries. The API serves them (``GET /metrics``); they survive restarts and count the work of
  every scheduler that writes to the database.
- :class:`SchedulerMetrics` holds what only the scheduler knows (how long a pass of its loop
  takes, the trials it has in flight) in a registry of its own: never the process-wide default
  registry, so several apps in one process do not clash. The API includes it when the scheduler
  runs in its process; a separate scheduler serves it with :func:`serve_scheduler_metrics`.

Only aggregates are exposed: no study, tenant or parameter appears in a label.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, and_, case, extract, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.orm import StudyRow
from service.trial_queries import TRIAL_STATES
from service.trial_queries import state as _state
from service.trial_queries import studies as _studies
from service.trial_queries import trials as _trials

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from search.loop import StudyLoop
    from service.scheduler import Scheduler

log = logging.getLogger(__name__)

# The text exposition format every Prometheus reads (what prometheus_client's own server sends
# to a scraper that asks for nothing newer).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")
STUDY_STATUSES = ("pending", "running", "completed", "failed", "stopped")
ACTIVE_STATUSES = ("pending", "running")

# Seconds: trials last from about a second (a small MLP) to hours (a CNN on a GPU).
DURATION_BUCKETS: tuple[float, ...] = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
DURATION_BUCKETS += (3600.0, 7200.0, 21600.0, 86400.0)
# Seconds: an idle pass waits 0.1 s for trial events; a pass that writes to the database or
# opens a study takes longer.
LOOP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SYNC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# -- what the database knows ----------------------------------------------------------------


class DatabaseCollector(Collector):
    """Reads the service's figures from the database at every scrape.

    Args:
        sessions: the app's sessionmaker (its engine reaches both Optuna's and the ``tf_``
            tables).
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        """Yield the figures, or only ``tuneforge_database_up 0`` if the database fails."""
        try:
            with self._sessions() as session:
                families = [
                    _trials_by_state(session),
                    *_studies_and_queues(session),
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
    counts = dict.fromkeys(TRIAL_STATES, 0)
    rows = session.execute(select(_state, func.count()).group_by(_state)).tuples()
    for state, n in rows:
        counts[str(state)] = int(n)
    family = GaugeMetricFamily(
        "tuneforge_trials", "Trials in the database by Optuna state.", labels=["state"]
    )
    for state, n in counts.items():
        family.add_metric([state], n)
    return family


def _studies_and_queues(session: Session) -> list[Metric]:
    by_status = dict.fromkeys(STUDY_STATUSES, 0)
    queued_studies = 0
    rows = session.execute(
        select(StudyRow.status, StudyRow.stop_requested, func.count()).group_by(
            StudyRow.status, StudyRow.stop_requested
        )
    ).tuples()
    for status, stop_requested, n in rows:
        by_status[status] = by_status.get(status, 0) + int(n)
        if status == "pending" and not stop_requested:
            queued_studies += int(n)
    studies = GaugeMetricFamily(
        "tuneforge_studies", "Studies submitted to the service by status.", labels=["status"]
    )
    for status, n in by_status.items():
        studies.add_metric([status], n)

    # Enqueued points (warm start) are Optuna trials in state WAITING: the study's next asks
    # take them as its trials in flight finish. Those of ended studies will never run.
    queued_trials = session.scalar(
        select(func.count())
        .select_from(_trials)
        .join(_studies, _studies.c.study_id == _trials.c.study_id)
        .join(StudyRow, StudyRow.optuna_study_name == _studies.c.study_name)
        .where(_state == "WAITING", StudyRow.status.in_(ACTIVE_STATUSES))
    )
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


def _trial_durations(session: Session) -> Metric:
    """One query: per finished state, the count, the sum and every bucket of the durations."""
    seconds = _seconds_between(session, _trials.c.datetime_start, _trials.c.datetime_complete)
    finished = and_(
        _state.in_(FINISHED_STATES),
        _trials.c.datetime_start.is_not(None),
        _trials.c.datetime_complete.is_not(None),
    )
    family = HistogramMetricFamily(
        "tuneforge_trial_duration_seconds",
        "Wall-clock time of finished trials (start to end, as Optuna recorded them), by state.",
        labels=["state"],
    )
    counted: dict[str, tuple[list[int], float]] = {}
    if seconds is None:  # a database with no date arithmetic here: read the two columns
        counted = _bucket_in_python(session, finished)
    else:
        # Materialized: each trial's duration is computed once, not once per bucket (a plain
        # subquery is flattened and repeats the expression in every SUM: 4x slower).
        d = (
            select(_state.label("state"), seconds.label("d"))
            .where(finished)
            .cte("finished_trials")
            .prefix_with("MATERIALIZED")
        )
        query = select(
            d.c.state,
            func.count(),
            func.coalesce(func.sum(d.c.d), 0.0),
            *(func.sum(case((d.c.d <= le, 1), else_=0)) for le in DURATION_BUCKETS),
        ).group_by(d.c.state)
        for state, n, total, *buckets in session.execute(query):
            counted[str(state)] = ([*(int(b) for b in buckets), int(n)], float(total))
    for state in FINISHED_STATES:
        cumulative, total = counted.get(state, ([0] * (len(DURATION_BUCKETS) + 1), 0.0))
        bounds = [*(_le(b) for b in DURATION_BUCKETS), "+Inf"]
        family.add_metric([state], list(zip(bounds, cumulative, strict=True)), total)
    return family


def _seconds_between(
    session: Session, start: ColumnElement[Any], end: ColumnElement[Any]
) -> ColumnElement[Any] | None:
    """``end - start`` in seconds, in the database's own SQL (None: not known for it)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # SQLite keeps milliseconds in its date arithmetic: round off the float noise.
        return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)
    if dialect == "postgresql":
        return extract("epoch", end - start)
    return None


def _bucket_in_python(
    session: Session, finished: ColumnElement[bool]
) -> dict[str, tuple[list[int], float]]:
    counted: dict[str, tuple[list[int], float]] = {}
    rows = session.execute(
        select(_state, _trials.c.datetime_start, _trials.c.datetime_complete).where(finished)
    ).tuples()
    for state, start, end in rows:
        cumulative, total = counted.get(str(state), ([0] * (len(DURATION_BUCKETS) + 1), 0.0))
        d = (end - start).total_seconds()
        for i, le in enumerate(DURATION_BUCKETS):
            cumulative[i] += d <= le
        cumulative[-1] += 1
        counted[str(state)] = (cumulative, total + d)
    return counted


def _le(bound: float) -> str:
    return repr(float(bound))


# -- what the scheduler knows ---------------------------------------------------------------


class SchedulerMetrics:
    """The scheduler's own figures, in a registry of its own.

    Updated by the scheduler's thread once per pass of its loop (a few microseconds), read by
    whichever server exposes :attr:`registry`.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.loop_seconds = Histogram(
            "tuneforge_scheduler_loop_seconds",
            "Duration of one pass of the scheduler's loop: reread the studies when due, start "
            "trials in free slots, wait up to 0.1 s for trial events and handle them.",
            buckets=LOOP_BUCKETS,
            registry=self.registry,
        )
        self.sync_seconds = Histogram(
            "tuneforge_scheduler_sync_seconds",
            "Duration of the scheduler's reread of the studies (open, stop, extend them).",
            buckets=SYNC_BUCKETS,
            registry=self.registry,
        )
        self.loop_errors = Counter(
            "tuneforge_scheduler_loop_errors",
            "Passes of the scheduler's loop that failed (each is retried after 1 s).",
            registry=self.registry,
        )
        self.trials_in_flight = Gauge(
            "tuneforge_scheduler_trials_in_flight",
            "Trials this scheduler has dispatched to Ray and not yet told (ask/tell studies; "
            "population members run under Ray Tune and are not counted).",
            registry=self.registry,
        )
        self.studies_running = Gauge(
            "tuneforge_scheduler_studies_running",
            "Studies this scheduler drives, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.last_pass = Gauge(
            "tuneforge_scheduler_last_pass_timestamp_seconds",
            "Unix time at which the scheduler's loop last finished a pass (0: none yet).",
            registry=self.registry,
        )
        self._loops = self.studies_running.labels(kind="loop")
        self._populations = self.studies_running.labels(kind="population")

    def pass_done(self, seconds: float, loops: Iterable[StudyLoop], n_populations: int) -> None:
        """Record one finished pass of the loop and what it left running.

        Args:
            seconds: how long the pass took.
            loops: the ask/tell studies the scheduler drives.
            n_populations: how many population (PBT) studies it drives.
        """
        loops = list(loops)
        self.loop_seconds.observe(seconds)
        self.trials_in_flight.set(sum(loop.n_in_flight for loop in loops))
        self._loops.set(len(loops))
        self._populations.set(n_populations)
        self.last_pass.set_to_current_time()

    def idle(self) -> None:
        """The loop has ended: nothing is in flight any more."""
        self.trials_in_flight.set(0)
        self._loops.set(0)
        self._populations.set(0)


# -- exposing them --------------------------------------------------------------------------


def render(sessions: sessionmaker[Session], scheduler: SchedulerMetrics | None) -> bytes:
    """The API's ``/metrics`` body: the database's figures, and the scheduler's when it runs in
    this process."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(sessions))
    if scheduler is not None:
        registry.register(scheduler.registry)
    return generate_latest(registry)


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint of a scheduler process (see
    :func:`serve_scheduler_metrics`)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def address(self) -> tuple[str, int]:
        """The host and port it listens on."""
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_scheduler_metrics(scheduler: Scheduler, host: str, port: int) -> MetricsServer | None:
    """Serve a separate scheduler's figures in Prometheus format, from a daemon thread.

    Every path answers with the metrics (``/metrics`` is the one to scrape). Only the
    scheduler's own figures are there: the database's come from the API's ``/metrics``.

    Args:
        scheduler: the scheduler whose :attr:`Scheduler.metrics` to serve.
        host: the address to listen on.
        port: the port (``scheduler_metrics_port``); 0 serves nothing.

    Returns:
        The running server (call ``stop()`` at shutdown), or None with port 0.
    """
    if port == 0:
        return None
    server, thread = start_http_server(port, addr=host, registry=scheduler.metrics.registry)
    log.info("scheduler metrics on http://%s:%d/metrics", host, port)
    return MetricsServer(server, thread)
