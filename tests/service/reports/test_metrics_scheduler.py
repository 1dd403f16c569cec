"""Prometheus metrics: the scheduler's own registry (joined to the database's figures, one per
scheduler, none in prometheus_client's global registry) and its standalone endpoint on a real
socket.

The exposition text is parsed with prometheus_client's own parser, as a scraper would.
"""

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import prometheus_client
import pytest
from sqlalchemy.orm import sessionmaker

from search.algorithm import Run
from service.config import Settings
from service.scheduling.metrics import SchedulerMetrics, serve_scheduler_metrics
from service.scheduling.scheduler import Scheduler
from service.store.engine import make_engine
from service.store.storage import make_storage
from tests.conftest import free_port
from tests.service.conftest import Db
from tests.service.reports._metrics import Scrape, render


def fake_runs(*in_flight: int, populations: int = 0) -> list[Run]:
    """Sampler loops with these trials in flight, and population runs."""
    loops = [SimpleNamespace(n_in_flight=n, label="loop") for n in in_flight]
    others = [SimpleNamespace(n_in_flight=0, label="population") for _ in range(populations)]
    return [cast(Run, run) for run in [*loops, *others]]


def test_scheduler_figures_join_the_database_ones(db: Db) -> None:
    scheduler = SchedulerMetrics()
    scheduler.pass_done(0.03, fake_runs(2, 1, populations=1))
    scheduler.pass_done(0.7, fake_runs(2, 0))
    with scheduler.sync_seconds.time():
        pass
    scheduler.loop_errors.inc()

    scrape = Scrape(render(db.sessions, scheduler).decode())
    assert scrape.value("tuneforge_database_up") == 1
    name = "tuneforge_scheduler_loop_seconds"
    assert scrape.value(f"{name}_count") == 2
    assert scrape.value(f"{name}_sum") == pytest.approx(0.73)
    loop_buckets = scrape.buckets(name)
    assert loop_buckets["0.025"] == 0
    assert loop_buckets["0.05"] == 1
    assert loop_buckets["0.5"] == 1
    assert loop_buckets["1.0"] == 2
    assert scrape.value("tuneforge_scheduler_sync_seconds_count") == 1
    assert scrape.value("tuneforge_scheduler_loop_errors_total") == 1
    assert scrape.value("tuneforge_scheduler_trials_in_flight") == 2  # the last pass's
    assert scrape.value("tuneforge_scheduler_studies_running", kind="loop") == 2
    assert scrape.value("tuneforge_scheduler_studies_running", kind="population") == 0
    assert scrape.value("tuneforge_scheduler_last_pass_timestamp_seconds") > 0

    scheduler.idle()
    scrape = Scrape(render(db.sessions, scheduler).decode())
    assert scrape.value("tuneforge_scheduler_trials_in_flight") == 0


def test_schedulers_keep_their_own_registries(sqlite_url: str, tmp_path: Path) -> None:
    """Two schedulers in one process (two apps in a test run) neither clash nor share, and
    nothing lands in prometheus_client's global registry."""
    settings = Settings(data_dir=tmp_path, database_url=sqlite_url)
    engine = make_engine(sqlite_url)
    storage = make_storage(sqlite_url)
    try:
        first = Scheduler(settings, sessionmaker(engine), storage)
        second = Scheduler(settings, sessionmaker(engine), storage)
    finally:
        storage.remove_session()
        engine.dispose()
    first.metrics.pass_done(0.1, fake_runs(3))
    assert first.metrics.registry is not second.metrics.registry
    assert first.metrics.registry.get_sample_value("tuneforge_scheduler_loop_seconds_count") == 1
    assert second.metrics.registry.get_sample_value("tuneforge_scheduler_loop_seconds_count") == 0
    global_text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "tuneforge_" not in global_text


def test_serve_scheduler_metrics_on_a_socket(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=sqlite_url)
    engine = make_engine(sqlite_url)
    storage = make_storage(sqlite_url)
    scheduler = Scheduler(settings, sessionmaker(engine), storage)
    scheduler.metrics.pass_done(0.05, fake_runs(1, 1))
    assert serve_scheduler_metrics(scheduler.metrics, "127.0.0.1", 0) is None  # 0: off

    port = free_port()
    server = serve_scheduler_metrics(scheduler.metrics, "127.0.0.1", port)
    assert server is not None
    try:
        assert server.address == ("127.0.0.1", port)
        resp = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain")
        scrape = Scrape(resp.text)
        assert scrape.value("tuneforge_scheduler_loop_seconds_count") == 1
        assert scrape.value("tuneforge_scheduler_trials_in_flight") == 2
        # Its own figures only: the database's come from the API.
        assert not scrape.has("tuneforge_trials")
        scheduler.metrics.pass_done(0.05, fake_runs())  # live: read at each scrape
        again = Scrape(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        assert again.value("tuneforge_scheduler_loop_seconds_count") == 2
        assert again.value("tuneforge_scheduler_trials_in_flight") == 0
    finally:
        server.stop()
        storage.remove_session()
        engine.dispose()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
