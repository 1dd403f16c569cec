"""The pre-flight check end to end (issue 17): through the API and the CLI on a live server,
on Ray, with nothing stored; and handed from an API that cannot reach Ray to scheduler
replicas through the database, each check run by exactly one of them."""

import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from benchmarks.harness import start_scheduler
from models.data import load_dataset
from tests.conftest import Server
from tests.service.api._datasets import npz
from tests.service.client.test_cli import ROOT, tuneforge

pytestmark = pytest.mark.slow


def _api(server: Server) -> httpx.Client:
    """The admin's client, reading long enough for answers held by ``?wait=60``."""
    client = server.api
    client.timeout = httpx.Timeout(120)
    return client


EXAMPLES = ROOT / "examples"


def _upload(server: Server, name: str, x: np.ndarray, y: np.ndarray) -> str:
    api = _api(server)
    resp = api.post("/datasets", files={"file": (f"{name}.npz", npz(x=x, y=y))})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _check(server: Server, spec: dict[str, Any], **params: Any) -> dict[str, Any]:
    api = _api(server)
    resp = api.post("/studies:check", json=spec, params={"wait": 60, **params})
    assert resp.status_code in (200, 202), resp.text
    job = resp.json()
    while job["status"] not in ("done", "failed"):
        job = api.get(f"/jobs/{job['id']}", params={"wait": 60}).json()
    assert job["status"] == "done", job
    return job


def _on_upload(upload_id: str, **training: Any) -> dict[str, Any]:
    spec = yaml.safe_load((EXAMPLES / "preflight-bad-lr.yaml").read_text())
    spec["task"]["dataset"] = {"upload_id": upload_id}
    spec["task"]["training"] = {"epochs": 5, **training}
    return spec


def test_the_cli_checks_a_healthy_study_and_a_diverging_one(server: Server) -> None:
    healthy = tuneforge(server, "check", "examples/digits-mlp.yaml", "--points", "2")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "pre-flight check passed (2 point(s)" in healthy.stdout
    assert healthy.stdout.count("\npoint: model.") == 1 and healthy.stdout.startswith("point: ")
    assert re.search(r"^OK +lr_range \(2 points\)$", healthy.stdout, re.M)
    assert "ERROR" not in healthy.stdout

    bad = tuneforge(server, "check", "examples/preflight-bad-lr.yaml", "--points", "1")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert re.search(r"^ERROR +lr_diverges \(1 point\)$", bad.stdout, re.M)
    assert "training.lr = 5 diverges" in bad.stdout

    as_json = tuneforge(
        server, "check", "examples/preflight-bad-lr.yaml", "--points", "1", "--json"
    )
    assert as_json.returncode == 1
    assert '"code": "lr_diverges"' in as_json.stdout
    # Nothing stored: no study came of it.
    api = _api(server)
    names = [s["name"] for s in api.get("/studies").json()["items"]]
    assert "preflight-bad-lr" not in names and "digits-mlp" not in names


def test_the_api_tells_a_data_problem_from_a_model_problem(server: Server) -> None:
    digits = load_dataset("digits", val_fraction=0.01)
    x = np.concatenate([digits.x_train, digits.x_val])
    y = np.concatenate([digits.y_train, digits.y_val])
    shuffled = _upload(server, "shuffled", x, np.random.default_rng(0).permutation(y))
    job = _check(server, _on_upload(shuffled, lr=1e-3), points=1)
    result = job["result"]
    assert not result["passed"]
    assert [f["code"] for f in result["findings"] if f["severity"] == "error"] == [
        "labels_unlearnable"
    ]
    assert "a data problem, not a model problem" in result["findings"][0]["message"]
    point = result["points"][0]
    assert point["overfit"]["train_accuracy"] == 1.0 and point["short_fit"]["val_accuracy"] < 0.2

    # Raw inputs far below zero, not scaled: dead ReLUs, and the sentence says what to change.
    offset = _upload(server, "offset", x - 1000.0, y)
    job = _check(server, _on_upload(offset, preprocess="none"), points=1)
    codes = {f["code"]: f for f in job["result"]["findings"]}
    assert "dead_relu" in codes and codes["dead_relu"]["severity"] == "error"
    assert "training.preprocess: standardize" in codes["dead_relu"]["message"]

    # The same data, standardized: healthy.
    job = _check(server, _on_upload(offset, lr=1e-3), points=1)
    assert job["result"]["passed"], job["result"]["findings"]


@pytest.fixture
def split(
    sqlite_url: str, tmp_path: Path, ray_cluster: str, server_factory: Callable[..., Server]
) -> Iterator[tuple[Server, Callable[[], Any]]]:
    """An API with no scheduler (as on a cluster, it cannot reach Ray), and scheduler
    replicas on its database, joined to the session's Ray, started on demand."""
    server = server_factory(sqlite_url, env={"TUNEFORGE_RUN_SCHEDULER": "false"})
    env = {"TUNEFORGE_SCHEDULER_POLL_S": "0.2", "TUNEFORGE_WARM_WORKERS": "false"}
    replicas: list[Any] = []

    def start() -> Any:
        replicas.append(start_scheduler(sqlite_url, tmp_path / "data", ray_cluster, env=env))
        return replicas[-1]

    yield server, start
    for replica in replicas:
        replica.stop()


def test_checks_go_through_the_database_to_one_scheduler_each(
    split: tuple[Server, Callable[[], Any]], sqlite_url: str
) -> None:
    server, start = split
    spec = yaml.safe_load((EXAMPLES / "preflight-bad-lr.yaml").read_text())
    rng = np.random.default_rng(0)
    upload = _upload(server, "gone", rng.normal(size=(60, 4)), np.arange(60) % 2)
    api = _api(server)
    jobs = [api.post("/studies:check", json=spec, params={"points": 1}).json() for _ in range(3)]
    # A check whose data is deleted before any scheduler took it.
    doomed = api.post("/studies:check", json=_on_upload(upload)).json()
    assert api.delete(f"/datasets/{upload}").status_code == 204
    again = api.get(f"/jobs/{jobs[0]['id']}", params={"wait": 1})
    assert again.status_code == 202 and again.json()["status"] == "pending"  # no scheduler
    start(), start()
    done = [_poll(server, j["id"]) for j in jobs]
    assert all(j["status"] == "done" for j in done), done
    assert all("lr_diverges" in {f["code"] for f in j["result"]["findings"]} for j in done)
    failed = _poll(server, doomed["id"])
    assert failed["status"] == "failed" and "no longer exists" in failed["error"]
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT attempts, owner FROM tf_jobs ORDER BY id").fetchall()
    assert [a for a, _ in rows] == [1, 1, 1, 1]  # each claimed once, by one replica


def _poll(server: Server, job_id: int) -> dict[str, Any]:
    api = _api(server)
    job = api.get(f"/jobs/{job_id}", params={"wait": 60}).json()
    while job["status"] not in ("done", "failed"):
        job = api.get(f"/jobs/{job_id}", params={"wait": 60}).json()
    return dict(job)
