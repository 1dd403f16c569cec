"""Expert suggestions end to end (issue 19): a trial enqueued into a running study through the
API (and the CLI) runs before the sampler's next proposal, with the given parameters and the rest
sampled, and counts in the budget; an ended study takes none (409)."""

import os
import subprocess
import sys
from datetime import datetime

import pytest

from tests.conftest import Server, digits_study, finished, wait_for

pytestmark = pytest.mark.slow


def started(trial: dict) -> datetime:
    return datetime.fromisoformat(trial["datetime_start"])


def test_an_enqueued_trial_runs_next_with_its_params(server: Server) -> None:
    api = server.api
    spec = digits_study("enqueue", max_trials=6, epochs=100, lr=0.01, width_high=64)
    spec["parallelism"] = 1
    spec["search_space"]["training.lr"] = {"type": "float", "low": 0.001, "high": 0.1, "log": True}
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]
    wait_for(api, study_id, lambda s: s["trial_counts"]["RUNNING"] == 1, timeout=120)
    queued = api.post(
        f"/studies/{study_id}/trials", json={"params": {"model.width": 48}, "note": "by hand"}
    )
    assert queued.status_code == 201, queued.text
    number = queued.json()["number"]
    # Every trial asked from here on is asked after the queued one was written.
    listed = api.get(f"/studies/{study_id}/trials").json()["items"]
    before = {t["number"] for t in listed} - {number}
    # The CLI queues a second one, its values read as YAML.
    env = {**os.environ, "TUNEFORGE_URL": server.url, "TUNEFORGE_DATA_DIR": str(server.data_dir)}
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "enqueue",
            str(study_id),
            "model.width=20",
            "training.lr=1e-2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    cli_number = int(cli.stdout.split("trial ")[1].split()[0])
    assert f"study {study_id}: trial {cli_number} queued" in cli.stdout
    study = wait_for(api, study_id, finished, timeout=300)
    assert study["status"] == "completed", study
    trials = {t["number"]: t for t in api.get(f"/studies/{study_id}/trials").json()["items"]}
    assert len(trials) == 6 and {t["state"] for t in trials.values()} == {"COMPLETE"}
    mine, cli_one = trials[number], trials[cli_number]
    assert mine["params"]["model.width"] == 48 and "training.lr" in mine["params"]  # sampled
    assert mine["user_attrs"]["enqueued"].endswith(": by hand")
    assert cli_one["params"] == {"model.width": 20, "training.lr": 0.01}
    # The one queued while the first trial ran is the next to start: nothing the sampler
    # proposed came before it.
    later = sorted((t for n, t in trials.items() if n not in before), key=started)
    assert later[0]["number"] == number, [t["number"] for t in later]
    ended = api.post(f"/studies/{study_id}/trials", json={"params": {"model.width": 30}})
    assert ended.status_code == 409 and "has ended (completed)" in ended.json()["detail"]
