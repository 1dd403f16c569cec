"""The ``tuneforge`` CLI against a live server: the README's quickstart, as a user runs it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Server, digits_study, finished, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


def tuneforge(server: Server, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # The data directory the server wrote its admin key to: the CLI reads it from there.
    env = {**os.environ, "TUNEFORGE_URL": server.url, "TUNEFORGE_DATA_DIR": str(server.data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_quickstart_submit_wait_reaches_095(shared_server: Server, tmp_path: Path) -> None:
    server = shared_server
    run = tuneforge(server, "submit", "examples/digits-mlp.yaml", "--wait")
    assert run.returncode == 0, run.stderr + run.stdout
    study_id = re.search(r"^study (\d+) submitted", run.stdout, re.M).group(1)  # type: ignore[union-attr]
    assert f"study {study_id} completed: max_trials reached" in run.stdout
    best = float(re.search(r"best trial \d+: val_accuracy=([0-9.]+)  ", run.stdout).group(1))  # type: ignore[union-attr]
    assert best > 0.95, run.stdout

    status = tuneforge(server, "status", study_id)
    assert status.returncode == 0, status.stderr
    assert "[completed] 12/12 done · " in status.stdout, status.stdout
    trials = tuneforge(server, "trials", study_id)
    assert trials.returncode == 0 and trials.stdout.strip().endswith("12 trials")
    shown = tuneforge(server, "best", study_id)
    assert shown.returncode == 0 and f"tuneforge download {study_id}" in shown.stdout
    as_json = tuneforge(server, "best", study_id, "--json")
    assert as_json.returncode == 0 and '"learning_curve"' in as_json.stdout
    # --wait followed the event stream: a line per finished trial, then the totals.
    finished_trials = re.findall(r"^trial (\d+) (COMPLETE|PRUNED|FAIL)\b", run.stdout, re.M)
    assert sorted(int(n) for n, _ in finished_trials) == list(range(12))
    assert re.search(
        r"^\[completed\] 12/12 done · \d+ complete · \d+ pruned · 0 failed · best ",
        run.stdout,
        re.M,
    )
    report_file = tmp_path / "report.html"
    report = tuneforge(server, "report", study_id, "-o", str(report_file))
    assert report.returncode == 0 and f"wrote {report_file}" in report.stdout, report.stderr
    html = report_file.read_text()
    assert html.startswith("<!DOCTYPE html>") and "optimization-history" in html
    stop = tuneforge(server, "stop", study_id)  # finished: stays completed
    assert stop.returncode == 0 and "status completed" in stop.stdout

    # The best model downloads as TorchScript and classifies raw digits.
    import warnings

    import torch

    from models.data import load_dataset

    model_file = tmp_path / "best.ts"
    got = tuneforge(server, "download", study_id, "-o", str(model_file))
    assert got.returncode == 0 and model_file.is_file(), got.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(model_file))
    data = load_dataset("digits")
    with torch.no_grad():
        accuracy = (scripted(torch.tensor(data.x_val)).argmax(1).numpy() == data.y_val).mean()
    assert accuracy == pytest.approx(best, abs=1e-4)
    missing = tuneforge(server, "download", study_id, "--trial", "999")
    assert missing.returncode == 1 and "404" in missing.stderr


def test_cli_uploads_a_dataset(shared_server: Server, tmp_path: Path) -> None:
    import numpy as np
    from sklearn.datasets import load_iris

    iris = load_iris()
    path = tmp_path / "iris.npz"
    np.savez(path, x=iris.data.astype(np.float32), y=iris.target)
    server = shared_server
    run = tuneforge(server, "upload", str(path), "--name", "my-iris")
    assert run.returncode == 0, run.stderr
    assert re.match(
        r"^dataset [0-9a-f]{12} uploaded: my-iris, multiclass, tabular samples of shape 4, "
        r"150 samples$",
        run.stdout.strip(),
    )
    bad = tmp_path / "bad.txt"
    bad.write_text("nope")
    refused = tuneforge(server, "upload", str(bad))
    assert refused.returncode == 1 and "error: file:" in refused.stderr


def test_cli_reports_bad_spec_with_its_path(shared_server: Server, tmp_path: Path) -> None:
    server = shared_server
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "examples/digits-mlp.yaml").read_text()
    bad.write_text(text.replace("max_trials: 12", "max_trials: 0"))
    run = tuneforge(server, "submit", str(bad))
    assert run.returncode == 1
    assert "error: budget.max_trials:" in run.stderr
    assert "greater than 0" in run.stderr
    missing = tuneforge(server, "status", "999")
    assert missing.returncode == 1 and "404" in missing.stderr


def test_dashboard_command_serves_the_database(tmp_path: Path) -> None:
    import time

    import httpx
    import optuna

    from tests.conftest import free_port

    url = f"sqlite:///{tmp_path / 'tuneforge.db'}"
    optuna.create_study(study_name="seen-by-dashboard", storage=url)
    port = free_port()
    env = {**os.environ, "TUNEFORGE_DATABASE_URL": url, "TUNEFORGE_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = httpx.get(f"http://127.0.0.1:{port}/api/studies").json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.3)
        names = [s["study_name"] for s in studies["study_summaries"]]
        assert names == ["seen-by-dashboard"]
    finally:
        proc.terminate()
        proc.wait(30)


def test_spec_files_read_exponents_as_numbers_and_no_python_objects() -> None:
    import yaml

    from service.client.specfile import load_spec

    spec = load_spec("lr: 1e-3\nwd: 5E-4\nepochs: 10\nname: 1e3x\n")
    assert spec == {"lr": 0.001, "wd": 0.0005, "epochs": 10, "name": "1e3x"}
    with pytest.raises(yaml.YAMLError):
        load_spec("x: !!python/object/apply:os.system ['true']")


def test_cli_sets_and_shows_a_tenant_s_quota(shared_server: Server) -> None:
    server = shared_server
    tenant = "cli-quota"
    set_run = tuneforge(server, "quota", tenant, "--studies", "3", "--weight", "2")
    assert set_run.returncode == 0, set_run.stderr
    lines = set_run.stdout.splitlines()
    assert lines[0] == f"tenant {tenant}"
    assert re.search(r"active_studies\s+0 of 3$", set_run.stdout, re.M), set_run.stdout
    assert re.search(r"weight\s+of 2\.0$", set_run.stdout, re.M), set_run.stdout
    shown = tuneforge(server, "quota", tenant)
    assert shown.stdout == set_run.stdout
    unnamed = tuneforge(server, "quota", "--studies", "3")
    assert unnamed.returncode != 0 and "name the tenant" in unnamed.stderr


def test_cli_lists_updates_stops_and_deletes_studies(shared_server: Server) -> None:
    import json

    server = shared_server
    spec = digits_study("cli-lifecycle", max_trials=2, epochs=2, lr=0.01)
    study_id = server.api.post("/studies", json=spec).raise_for_status().json()["id"]
    wait_for(server.api, study_id, finished)

    listed = tuneforge(server, "studies", "--state", "COMPLETED")  # states in any case
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["id", "status", "done", "running", "best", "name"]
    mine = [r for r in rows if r.split()[:1] == [str(study_id)]]
    assert mine and mine[0].split()[1:3] == ["completed", "2"]
    as_json = json.loads(tuneforge(server, "studies", "--state", "completed", "--json").stdout)
    assert study_id in {s["id"] for s in as_json}
    assert all(s["status"] == "completed" for s in as_json)
    wrong = tuneforge(server, "studies", "--state", "done")
    assert wrong.returncode != 0 and "--state" in wrong.stderr and "query." not in wrong.stderr

    # A budget far beyond what runs before the drain below: the study is running then.
    resumed = tuneforge(
        server, "update", str(study_id), "--max-trials", "200", "--parallelism", "1"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"study {study_id}: pending, max_trials 200, parallelism 1" in resumed.stdout
    wait_for(server.api, study_id, lambda s: s["status"] == "running", timeout=60)
    drained = tuneforge(server, "stop", str(study_id), "--drain")
    assert drained.returncode == 0 and "stop (drain) requested" in drained.stdout
    study = wait_for(server.api, study_id, finished)
    assert study["status"] == "stopped"

    deleted = tuneforge(server, "delete", str(study_id))
    assert deleted.returncode == 0 and f"study {study_id} deleted" in deleted.stdout
    assert server.api.get(f"/studies/{study_id}").status_code == 404
