"""What ``tuneforge serve`` logs (issue 16): one line when it is ready, with the API's and the
docs' addresses, a line per study submitted and ended with its reason, and none of the third-
party noise a user cannot act on (Optuna's experimental-feature warnings and per-trial lines)."""

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import harness
from tests.conftest import TEST_SERVER_ENV, Server, digits_study, finished, wait_for

pytestmark = pytest.mark.slow


def test_the_server_says_when_it_is_ready_and_what_each_study_did(
    server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    server = server_factory(sqlite_url)
    spec = digits_study("logged", max_trials=2, epochs=2, lr=0.01)
    spec["algorithm"] = {"name": "tpe", "settings": {"seed": 0}}  # Optuna calls it experimental
    study_id = server.api.post("/studies", json=spec).raise_for_status().json()["id"]
    wait_for(server.api, study_id, finished)
    assert server.api.get(f"/studies/{study_id}/report").status_code == 200

    log = server.log()
    ready = [line for line in log.splitlines() if "tuneforge ready" in line]
    assert len(ready) == 1, log[-3000:]
    assert f"API {server.url}/api/v1, docs {server.url}/docs" in ready[0]
    assert re.search(rf"study {study_id} \(logged\) submitted by tenant default", log)
    assert re.search(rf"study {study_id} \(logged\) running", log)
    assert re.search(rf"study {study_id} completed: max_trials reached", log)
    for noise in ("ExperimentalWarning", "A new study created", "Trial 0 finished"):
        assert noise not in log, noise


def test_a_server_with_its_own_ray_starts_without_warnings(tmp_path: Path) -> None:
    """``make run``'s case: the server starts a local Ray, from its scheduler's thread."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    data_dir = tmp_path / ".tuneforge"
    server = harness.start_server(
        f"sqlite:///{data_dir / 'tuneforge.db'}",
        data_dir,
        env={**env, **TEST_SERVER_ENV, "TUNEFORGE_RAY_ADDRESS": ""},
        cwd=tmp_path,
    )
    try:
        wait_until_ready = time.monotonic() + 60
        while "tuneforge ready" not in server.log() and time.monotonic() < wait_until_ready:
            time.sleep(0.2)
        log = server.log()
    finally:
        server.stop()
    assert "tuneforge ready" in log, log[-3000:]
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    # The one warning left is the service's own: where it wrote the admin key.
    assert len(warnings) == 1 and "created an admin API key" in warnings[0], log[-3000:]
