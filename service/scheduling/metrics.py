"""Prometheus metrics of what only the scheduler knows, in a registry of its own.

How long a pass of its loop takes, the trials it has in flight, the studies it drives: never
in the process-wide default registry, so several apps in one process do not clash. The API
includes them when the scheduler runs in its process (:func:`service.reports.metrics.render`);
a separate scheduler serves them with :func:`serve_scheduler_metrics`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from search.algorithm import RUN_LABELS, Run

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

log = logging.getLogger(__name__)

# Seconds: an idle pass waits 0.1 s for trial events; a pass that writes to the database or
# opens a study takes longer.
LOOP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SYNC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
        for label in RUN_LABELS:  # every kind shows, with 0 until one runs
            self.studies_running.labels(kind=label).set(0)

    def pass_done(self, seconds: float, runs: Iterable[Run]) -> None:
        """Record one finished pass of the loop and what it left running.

        Args:
            seconds: how long the pass took.
            runs: the studies the scheduler drives.
        """
        runs = list(runs)
        self.loop_seconds.observe(seconds)
        self.trials_in_flight.set(sum(run.n_in_flight for run in runs))
        for label in {*RUN_LABELS, *(run.label for run in runs)}:
            count = sum(run.label == label for run in runs)
            self.studies_running.labels(kind=label).set(count)
        self.last_pass.set_to_current_time()

    def idle(self) -> None:
        """The loop has ended: nothing is in flight any more."""
        self.trials_in_flight.set(0)
        self.studies_running.clear()
        for label in RUN_LABELS:
            self.studies_running.labels(kind=label).set(0)


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


def serve_scheduler_metrics(
    metrics: SchedulerMetrics, host: str, port: int
) -> MetricsServer | None:
    """Serve a separate scheduler's figures in Prometheus format, from a daemon thread.

    Every path answers with the metrics (``/metrics`` is the one to scrape). Only the
    scheduler's own figures are there: the database's come from the API's ``/metrics``.

    Args:
        metrics: the scheduler's figures.
        host: the address to listen on.
        port: the port (``scheduler_metrics_port``); 0 serves nothing.

    Returns:
        The running server (call ``stop()`` at shutdown), or None with port 0.
    """
    if port == 0:
        return None
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    log.info("scheduler metrics on http://%s:%d/metrics", host, port)
    return MetricsServer(server, thread)
