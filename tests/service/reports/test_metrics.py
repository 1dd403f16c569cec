"""Prometheus metrics: the database's figures read at scrape time (SQLite and PostgreSQL), the
scheduler's own registry, its standalone endpoint on a real socket, the API's ``/metrics``, and
a real server whose study finished.

Every expected figure is written out or counted here from the trials the test made, and the
exposition text is parsed with prometheus_client's own parser, as a scraper would.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import optuna
import prometheus_client
import pytest
from fastapi.testclient import TestClient
from optuna.storages._rdb.models import StudyModel, TrialModel
from optuna.trial import FrozenTrial, TrialState
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import sessionmaker

from search.algorithm import Run
from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings
from service.reports.metrics import DURATION_BUCKETS
from service.reports.metrics import render as render_registry
from service.scheduling.metrics import SchedulerMetrics, serve_scheduler_metrics
from service.scheduling.scheduler import Scheduler
from service.store import optuna_sql
from service.store.engine import make_engine
from service.store.orm import StudyRow
from service.store.storage import make_storage
from tests.conftest import Server, digits_study, finished, free_port
from tests.service.conftest import Db

optuna.logging.set_verbosity(optuna.logging.WARNING)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
LE = [*(repr(b) for b in DURATION_BUCKETS), "+Inf"]


def render(sessions: Any, scheduler: SchedulerMetrics | None) -> bytes:
    """The API's /metrics body, with the scheduler's figures when one runs in the process."""
    return render_registry(sessions, None if scheduler is None else scheduler.registry)


# -- reading the exposition text -------------------------------------------------------------


@dataclass
class Scrape:
    """Samples of one exposition text, looked up by name and labels."""

    text: str

    def __post_init__(self) -> None:
        self.samples = [
            s for family in text_string_to_metric_families(self.text) for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) == 1, f"{name}{labels}: {found} in\n{self.text}"
        return float(found[0])

    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.samples)

    def buckets(self, name: str, **labels: str) -> dict[str, float]:
        """``le`` → cumulative count of the histogram ``name``'s buckets with ``labels``."""
        return {
            s.labels["le"]: s.value
            for s in self.samples
            if s.name == f"{name}_bucket" and {**s.labels, "le": ""} == {**labels, "le": ""}
        }


def cumulative(durations: list[float]) -> dict[str, float]:
    """The buckets Prometheus expects for these durations."""
    counts = {repr(b): float(sum(d <= b for d in durations)) for b in DURATION_BUCKETS}
    return {**counts, "+Inf": float(len(durations))}


# -- a database with known studies and trials ------------------------------------------------


def add_trial(study: optuna.Study, state: TrialState, seconds: float | None) -> None:
    """A trial in ``state`` that ran ``seconds`` (None: started, not finished)."""
    study.add_trial(
        FrozenTrial(
            number=0,
            trial_id=0,
            state=state,
            value=1.0 if state == TrialState.COMPLETE else None,
            datetime_start=T0,
            datetime_complete=None if seconds is None else T0 + timedelta(seconds=seconds),
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
        )
    )


def add_row(db: Db, name: str, status: str, tenant: str = "acme", stop: bool = False) -> None:
    with db.sessions() as s:
        s.add(
            StudyRow(
                name=name,
                tenant=tenant,
                optuna_study_name=name,
                spec={},
                status=status,
                stop_requested=stop,
            )
        )
        s.commit()


COMPLETE_S = [0.5, 3.0, 45.0, 700.0]
PRUNED_S = [20.0]
FAIL_S = [2.0, 5000.0]
ENDED_COMPLETE_S = [90_000.0]  # longer than the last finite bucket


@pytest.fixture
def populated(db: Db) -> Db:
    """A running study with trials in every state and two enqueued points, an ended study with
    one long trial and a leftover enqueued point, and rows in most statuses."""
    running = optuna.create_study(study_name="secret-running-study", storage=db.storage)
    for seconds in COMPLETE_S:
        add_trial(running, TrialState.COMPLETE, seconds)
    for seconds in PRUNED_S:
        add_trial(running, TrialState.PRUNED, seconds)
    for seconds in FAIL_S:
        add_trial(running, TrialState.FAIL, seconds)
    add_trial(running, TrialState.RUNNING, None)
    running.enqueue_trial({"x": 1})
    running.enqueue_trial({"x": 2})
    ended = optuna.create_study(study_name="secret-ended-study", storage=db.storage)
    for seconds in ENDED_COMPLETE_S:
        add_trial(ended, TrialState.COMPLETE, seconds)
    ended.enqueue_trial({"x": 3})  # its study ended: it will never run

    add_row(db, "secret-running-study", "running")
    add_row(db, "secret-ended-study", "completed", tenant="globex")
    add_row(db, "queued-1", "pending")
    add_row(db, "queued-but-stopping", "pending", stop=True)
    add_row(db, "broken", "failed")
    return db


# -- the database's figures ------------------------------------------------------------------


def test_database_figures(populated: Db) -> None:
    text = render(populated.sessions, None).decode()
    scrape = Scrape(text)

    assert scrape.value("tuneforge_database_up") == 1
    trials = {s: scrape.value("tuneforge_trials", state=s) for s in TrialState.__members__}
    assert trials == {"COMPLETE": 5, "PRUNED": 1, "FAIL": 2, "RUNNING": 1, "WAITING": 3}
    studies = {
        s: scrape.value("tuneforge_studies", status=s)
        for s in ("pending", "running", "completed", "failed", "stopped")
    }
    assert studies == {"pending": 2, "running": 1, "completed": 1, "failed": 1, "stopped": 0}
    assert scrape.value("tuneforge_queued_studies") == 1  # the stopping one is not queued
    assert scrape.value("tuneforge_queued_trials") == 2  # the ended study's point is not

    # 0.5, 3, 45, 700 and 90000 seconds, written out: cumulative buckets, +Inf holds all.
    name = "tuneforge_trial_duration_seconds"
    assert scrape.buckets(name, state="COMPLETE") == dict(
        zip(LE, [1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5], strict=True)
    )
    assert scrape.value(f"{name}_count", state="COMPLETE") == 5
    assert scrape.value(f"{name}_sum", state="COMPLETE") == pytest.approx(90_748.5, abs=1e-3)
    assert scrape.buckets(name, state="PRUNED") == cumulative(PRUNED_S)
    assert scrape.value(f"{name}_sum", state="PRUNED") == pytest.approx(20.0, abs=1e-3)
    assert scrape.buckets(name, state="FAIL") == cumulative(FAIL_S)
    assert scrape.value(f"{name}_count", state="FAIL") == 2
    assert scrape.value(f"{name}_sum", state="FAIL") == pytest.approx(5002.0, abs=1e-3)
    # Unfinished trials have no duration; no other state gets a histogram.
    assert {s.labels.get("state") for s in scrape.samples if s.name.startswith(name)} == {
        "COMPLETE",
        "PRUNED",
        "FAIL",
    }

    # Aggregates only: no study, tenant or parameter shows.
    for secret in ("secret", "queued-1", "broken", "acme", "globex", '"x"'):
        assert secret not in text
    # Without a scheduler in the process, none of its figures.
    assert "tuneforge_scheduler" not in text


def test_python_fallback_agrees_with_sql(populated: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database without the date arithmetic written here gets the same histogram, bucketed in
    Python from the two datetime columns."""
    in_sql = render(populated.sessions, None).decode()
    monkeypatch.setattr(optuna_sql, "_seconds_between", lambda *_: None)
    in_python = render(populated.sessions, None).decode()
    name = "tuneforge_trial_duration_seconds"
    for state in ("COMPLETE", "PRUNED", "FAIL"):
        assert Scrape(in_python).buckets(name, state=state) == Scrape(in_sql).buckets(
            name, state=state
        )
        assert Scrape(in_python).value(f"{name}_sum", state=state) == pytest.approx(
            Scrape(in_sql).value(f"{name}_sum", state=state), abs=1e-3
        )
    assert Scrape(in_python).value(f"{name}_count", state="COMPLETE") == 5


def test_ten_thousand_trials(db: Db) -> None:
    """A large study, written in bulk: the aggregates still add up, trial by trial."""
    optuna.create_study(study_name="big", storage=db.storage)
    durations = [float(i % 4000) + 0.25 for i in range(9_000)]
    fails = [7.5] * 1_000
    with db.sessions() as s:
        study_id = s.scalars(select(StudyModel.study_id)).one()
        rows: list[dict[str, Any]] = [
            {
                "number": i,
                "study_id": study_id,
                "state": state,
                "datetime_start": T0.replace(tzinfo=None),
                "datetime_complete": (T0 + timedelta(seconds=d)).replace(tzinfo=None),
            }
            for i, (state, d) in enumerate(
                [(TrialState.COMPLETE, d) for d in durations]
                + [(TrialState.FAIL, d) for d in fails]
            )
        ]
        s.execute(insert(TrialModel.__table__), rows)  # type: ignore[arg-type]
        s.commit()

    scrape = Scrape(render(db.sessions, None).decode())
    assert scrape.value("tuneforge_trials", state="COMPLETE") == 9_000
    assert scrape.value("tuneforge_trials", state="FAIL") == 1_000
    name = "tuneforge_trial_duration_seconds"
    assert scrape.buckets(name, state="COMPLETE") == cumulative(durations)
    assert scrape.value(f"{name}_sum", state="COMPLETE") == pytest.approx(sum(durations), abs=0.1)
    assert scrape.buckets(name, state="FAIL") == cumulative(fails)


def test_database_down_is_a_figure_not_an_error(tmp_path: Path) -> None:
    """A database the collector cannot read gives ``tuneforge_database_up 0``, not a failed
    scrape: the scheduler's figures still come through."""
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables at all
    scheduler = SchedulerMetrics()
    scheduler.pass_done(0.2, [])
    try:
        scrape = Scrape(render(sessionmaker(engine), scheduler).decode())
    finally:
        engine.dispose()
    assert scrape.value("tuneforge_database_up") == 0
    assert not scrape.has("tuneforge_trials")
    assert scrape.value("tuneforge_scheduler_loop_seconds_count") == 1


# -- the scheduler's figures -----------------------------------------------------------------


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


# -- the API's /metrics ----------------------------------------------------------------------


def tiny_spec(name: str = "metrics-e2e", max_trials: int = 3) -> dict[str, Any]:
    return digits_study(name, max_trials, epochs=2, lr=0.05)


def test_metrics_route_needs_no_key_and_stays_out_of_openapi(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=sqlite_url, run_scheduler=False)
    with TestClient(create_app(settings)) as client:
        key = read_admin_key(tmp_path)
        created = client.post(
            "/api/v1/studies",
            json=tiny_spec("very-secret-name"),
            headers={"Authorization": f"Bearer {key}"},
        )
        assert created.status_code == 201, created.text

        resp = client.get("/metrics")  # no key
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        scrape = Scrape(resp.text)
        assert scrape.value("tuneforge_studies", status="pending") == 1
        assert scrape.value("tuneforge_queued_studies") == 1
        assert scrape.value("tuneforge_trials", state="COMPLETE") == 0
        assert not scrape.has("tuneforge_scheduler_loop_seconds")  # no scheduler here
        assert "very-secret-name" not in resp.text

        assert "/metrics" not in client.get("/openapi.json").json()["paths"]
        assert client.get("/api/v1/studies").status_code == 401  # the API still needs a key


@pytest.mark.slow
def test_real_server_counts_a_finished_study(
    server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    server = server_factory(sqlite_url)
    created = server.api.post("/studies", json=tiny_spec())
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]

    def scrape() -> Scrape:
        resp = httpx.get(f"{server.url}/metrics", timeout=30)  # no key
        assert resp.status_code == 200, resp.text
        return Scrape(resp.text)

    # Poll the study, and the metrics while it runs: the scheduler keeps parallelism (2) in
    # flight at most.
    seen_in_flight: set[float] = set()
    deadline = time.monotonic() + 300
    study: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen_in_flight.add(scrape().value("tuneforge_scheduler_trials_in_flight"))
        study = server.api.get(f"/studies/{study_id}").raise_for_status().json()
        if finished(study):
            break
        time.sleep(0.2)
    assert study["status"] == "completed", study
    assert max(seen_in_flight) <= 2, seen_in_flight

    after = scrape()
    assert after.value("tuneforge_database_up") == 1
    assert after.value("tuneforge_trials", state="COMPLETE") == 3
    assert after.value("tuneforge_trials", state="RUNNING") == 0
    assert after.value("tuneforge_studies", status="completed") == 1
    assert after.value("tuneforge_queued_studies") == 0
    durations = "tuneforge_trial_duration_seconds"
    assert after.value(f"{durations}_count", state="COMPLETE") == 3
    assert after.value(f"{durations}_sum", state="COMPLETE") > 0
    assert after.buckets(durations, state="COMPLETE")["+Inf"] == 3
    # The scheduler runs in the server's process: its loop was timed, pass after pass.
    assert after.value("tuneforge_scheduler_loop_seconds_count") > 0
    assert after.value("tuneforge_scheduler_loop_seconds_sum") > 0
    assert after.value("tuneforge_scheduler_sync_seconds_count") > 0
    assert after.value("tuneforge_scheduler_last_pass_timestamp_seconds") > 0

    # The pass that recorded the end also leaves nothing in flight (at its end, a moment after
    # the status is written).
    deadline = time.monotonic() + 30
    while scrape().value("tuneforge_scheduler_trials_in_flight") != 0:
        assert time.monotonic() < deadline, "trials still in flight after the study ended"
        time.sleep(0.2)
    assert scrape().value("tuneforge_scheduler_studies_running", kind="loop") == 0
