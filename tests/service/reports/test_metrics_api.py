"""Prometheus metrics: the API's ``/metrics`` (no key, not in the OpenAPI document, no study
names), and a real server whose study finished.

Every expected figure is counted here from the study the test ran, and the exposition text is
parsed with prometheus_client's own parser, as a scraper would.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings
from tests.conftest import Server, digits_study, finished
from tests.service.reports._metrics import Scrape


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
