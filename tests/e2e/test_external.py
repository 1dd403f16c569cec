"""External trials end to end (issue 19), through a live ``tuneforge serve``: clients that are
separate processes ask, report and tell; the scheduler fails a vanished client's trial when its
lease expires and ends the study on its budget."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
import yaml

from search.attrs import MAX_ATTR_JSON
from service.client import Client
from tests.conftest import Server, finished, wait_for
from tests.e2e.test_browser import dashboard as dashboard  # the fixture, shared

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def external_study(
    name: str, max_trials: int, parallelism: int, lease_s: float = 30
) -> dict[str, Any]:
    return {
        "name": name,
        "task": {"kind": "external", "metrics": ["val_loss", "val_accuracy"], "lease_s": lease_s},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "algorithm": {"name": "tpe", "settings": {"seed": 0, "n_startup_trials": 3}},
        "search_space": {
            "alpha": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True},
            "eta0": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
        },
        "budget": {"max_trials": max_trials},
        "parallelism": parallelism,
    }


def test_a_vanished_client_s_trial_fails_after_its_lease_and_the_study_goes_on(
    server: Server,
) -> None:
    api = server.api
    study_id = api.post("/studies", json=external_study("vanish", 3, 2, lease_s=5)).json()["id"]
    # A client (the Python loop) asks a trial, reports once, and is killed: its heartbeat dies
    # with it, and nothing tells the service.
    script = textwrap.dedent(
        """
        import sys, time
        from service.client.api import Client

        def objective(trial):
            trial.report({"val_loss": 1.0}, 1)
            print(trial.number, flush=True)
            time.sleep(600)

        with Client(sys.argv[1], sys.argv[2]) as client:
            client.study(int(sys.argv[3])).optimize(objective, n_trials=1)
        """
    )
    client = subprocess.Popen(
        [sys.executable, "-c", script, server.url, server.key or "", str(study_id)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None
    number = int(client.stdout.readline())
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    killed_at = time.time()
    # The study goes on meanwhile: another client evaluates the rest of the budget.
    for _ in range(2):
        asked = api.post(f"/studies/{study_id}/ask").raise_for_status().json()
        body = {"lease": asked["lease"], "metrics": {"val_loss": 0.5, "val_accuracy": 0.9}}
        api.post(f"/studies/{study_id}/trials/{asked['number']}/tell", json=body).raise_for_status()
    study = wait_for(api, study_id, finished, timeout=60)
    lost = api.get(f"/studies/{study_id}/trials/{number}").json()
    assert lost["state"] == "FAIL"
    assert lost["user_attrs"]["fail_reason"] == "lease expired: no word from its client for 5 s"
    failed_at = time.time()
    assert (
        failed_at - killed_at < 5 + 15
    )  # the lease, plus the scheduler's passes on a loaded machine
    assert [p["epoch"] for p in lost["learning_curve"]] == [1]  # what it reported is kept
    assert study["status"] == "completed", study
    assert study["status_reason"] == "max_trials reached"
    assert study["trial_counts"] == {**study["trial_counts"], "COMPLETE": 2, "FAIL": 1}
    again = api.post(f"/studies/{study_id}/ask")
    assert again.status_code == 409 and "has ended (completed)" in again.json()["detail"]


def client_env(server: Server) -> dict[str, str]:
    return {**os.environ, "TUNEFORGE_URL": server.url, "TUNEFORGE_API_KEY": server.key or ""}


def example_study(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "examples/external/study.yaml").read_text())
    spec.update(changes)
    return spec


def test_three_client_processes_optimize_one_study_with_tpe_and_asha(server: Server) -> None:
    api = server.api
    spec = example_study(parallelism=3)  # TPE + ASHA, 12 trials, scikit-learn on digits
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]
    clients = [
        subprocess.Popen(
            [sys.executable, "examples/external/objective.py", str(study_id)],
            cwd=ROOT,
            env=client_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [c.communicate(timeout=300)[0] for c in clients]
    assert [c.returncode for c in clients] == [0, 0, 0], outputs
    study = wait_for(api, study_id, finished, timeout=60)
    assert study["status"] == "completed" and study["status_reason"] == "max_trials reached"
    items = api.get(f"/studies/{study_id}/trials").json()["items"]
    assert len(items) == 12  # the budget exactly
    states = [t["state"] for t in items]
    assert set(states) <= {"COMPLETE", "PRUNED"} and "PRUNED" in states, states
    # Each client process evaluated trials of its own; together, every trial once.
    told = [re.findall(r"^trial (\d+) ", out, re.M) for out in outputs]
    assert all(told), outputs
    assert sorted(int(n) for numbers in told for n in numbers) == list(range(12))
    for trial in items:
        detail = api.get(f"/studies/{study_id}/trials/{trial['number']}").json()
        epochs = [p["epoch"] for p in detail["learning_curve"]]
        if trial["state"] == "PRUNED":  # stopped at the decision: nothing after its rung
            at = trial["user_attrs"]["pruned_at_epoch"]
            assert epochs == list(range(1, at + 1)) and at < 20
            assert "asha rung" in trial["user_attrs"]["pruned_reason"]
        else:
            assert epochs == list(range(1, 21))
            assert trial["value"] == detail["learning_curve"][-1]["metrics"]["val_loss"]
    # The event stream shows the told trials, as for a trained study.
    with Client(server.url, server.key) as tf:
        events = [e for e in tf.events(study_id) if e.kind == "trial"]
    assert sorted({e.data["number"] for e in events}) == list(range(12))
    # Optuna's own tables hold it, as for a trained study.
    storage = optuna.storages.RDBStorage(server.database_url)
    [summary] = [
        s
        for s in optuna.get_all_study_summaries(storage)
        if s.study_name == study["optuna_study_name"]
    ]
    assert summary.n_trials == 12


# examples/external/train.py, paced by the service: each line waits for the last one's report.
PACED = """
import os, subprocess, sys, time
from service.client import Client

number = int(os.environ["TUNEFORGE_TRIAL"])
train = subprocess.Popen(
    [sys.executable, "examples/external/train.py"], stdout=subprocess.PIPE, text=True
)
with Client(os.environ["TUNEFORGE_URL"], os.environ["TUNEFORGE_API_KEY"] or None) as client:
    for step, line in enumerate(train.stdout, start=1):
        print(line, end="", flush=True)
        deadline = time.monotonic() + 120
        while not any(
            p["epoch"] >= step for p in client.trial({study_id}, number)["learning_curve"]
        ):
            assert time.monotonic() < deadline, f"step {{step}} was never reported"
            time.sleep(0.02)
sys.exit(train.wait())
"""


def test_the_agent_runs_a_script_per_trial_and_kills_a_pruned_one(
    server: Server, tmp_path: Path
) -> None:
    api = server.api
    spec = example_study(name="agent", budget={"max_trials": 8})
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]
    finished_file = tmp_path / "finished.txt"
    paced = tmp_path / "paced.py"
    paced.write_text(PACED.format(study_id=study_id))
    # The script's own end is marked after it: a process killed by the agent never marks it.
    # It prints a line only once the service holds the one before, so it cannot finish on its
    # own while the agent still reports the step its pruner stops it at.
    command = f'{sys.executable} {paced} && echo "$TUNEFORGE_TRIAL" >> {finished_file}'
    agent = subprocess.run(
        [sys.executable, "-m", "service.cli", "agent", str(study_id), "--", "sh", "-c", command],
        cwd=ROOT,
        env=client_env(server),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert agent.returncode == 0, agent.stderr
    study = wait_for(api, study_id, finished, timeout=60)
    assert study["status"] == "completed"
    items = api.get(f"/studies/{study_id}/trials").json()["items"]
    assert len(items) == 8
    pruned = {t["number"] for t in items if t["state"] == "PRUNED"}
    complete = {t["number"] for t in items if t["state"] == "COMPLETE"}
    assert pruned and complete and len(pruned | complete) == 8, agent.stdout
    marked = {int(n) for n in finished_file.read_text().split()}
    assert marked == complete  # every pruned trial's process was killed before its end
    for number in pruned:
        assert re.search(rf"^trial {number} pruned", agent.stdout, re.M), agent.stdout
    assert agent.stdout.rstrip().splitlines()[-1].startswith("agent done")


def test_optuna_dashboard_shows_an_external_study_as_a_trained_one(
    server: Server, dashboard: Callable[[Server], str]
) -> None:
    """The dashboard reads the external trials from Optuna's tables: their states, values,
    intermediate values and short user attributes (its JSON API, which its pages draw)."""
    api = server.api
    study = api.post("/studies", json=external_study("ext-dash", 3, 1)).raise_for_status().json()
    url = f"/studies/{study['id']}"
    for n in range(3):
        asked = api.post(f"{url}/ask").raise_for_status().json()
        lease = {"lease": asked["lease"]}
        for step in (1, 2):
            metrics = {"val_loss": 1.0 / (step + n), "val_accuracy": 0.5}
            api.post(f"{url}/trials/{n}/report", json={**lease, "step": step, "metrics": metrics})
        told = {"state": "fail", "reason": "diverged"} if n == 2 else {"metrics": metrics}
        api.post(f"{url}/trials/{n}/tell", json={**lease, **told}).raise_for_status()
    wait_for(api, study["id"], finished, timeout=60)

    dash = dashboard(server)
    summaries = httpx.get(f"{dash}/api/studies", timeout=10).json()["study_summaries"]
    (sid,) = [s["study_id"] for s in summaries if s["study_name"] == study["optuna_study_name"]]
    detail = httpx.get(f"{dash}/api/studies/{sid}", params={"after": 0}, timeout=10).json()
    trials = sorted(detail["trials"], key=lambda t: t["number"])
    assert [t["state"] for t in trials] == ["Complete", "Complete", "Fail"]
    assert [t["values"] for t in trials[:2]] == [[0.5], [1.0 / 3]]
    assert [v["step"] for v in trials[0]["intermediate_values"]] == [1, 2]
    attrs = [a for t in trials for a in t["user_attrs"]]
    assert {"key": "fail_reason", "value": "diverged"} in attrs
    assert all(len(a["value"]) <= MAX_ATTR_JSON for a in attrs)
