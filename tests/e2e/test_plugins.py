"""Catalog plugins end to end (issue 19): ``examples/plugin`` installed with pip into a folder
on the server's ``PYTHONPATH`` (the image of every process and Ray node, in a deployment) adds
the ``gated_mlp`` family and the ``spirals`` dataset; a study uses both through the API and
trains on Ray. The same spec is a 422 naming the plugin where the API lacks the package
(uninstalled), and where the API has it but the Ray workers do not."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness import start_scheduler
from tests.conftest import Server, finished, start_server, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed by pip, as a deployment installs it (no build isolation: no
    index is reached)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(ROOT / "examples" / "plugin"),
        ],
        check=True,
        timeout=300,
    )
    return target


def spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "algorithm": {"name": "tpe", "settings": {"seed": 0, "n_startup_trials": 3}},
        "search_space": {
            "model.width": {"type": "int", "low": 16, "high": 64},
            "training.lr": {"type": "float", "low": 0.003, "high": 0.03, "log": True},
        },
        "budget": {"max_trials": 4},
        "parallelism": 2,
        "task": {
            "dataset": {"name": "spirals", "options": {"n_samples": 600, "noise": 0.05}},
            "model": {"family": "gated_mlp", "layers": 3},
            "training": {"epochs": 40},
        },
    }


def refusal(server: Server, name: str) -> dict[str, str]:
    answer = server.api.post("/studies", json=spec(name))
    assert answer.status_code == 422, answer.text
    assert server.api.get("/studies").json()["total"] == 0  # nothing written
    return {e["path"]: e["msg"] for e in answer.json()["detail"]}


def test_a_study_trains_a_plugin_family_on_a_plugin_dataset(
    site: Path, tmp_path: Path, sqlite_url: str
) -> None:
    server = start_server(sqlite_url, tmp_path / "data", env={"PYTHONPATH": str(site)})
    try:
        catalog = server.api.get("/catalog").json()
        assert catalog["families"]["gated_mlp"]["plugin"]["package"] == "tuneforge-example-plugin"
        created = server.api.post("/studies", json=spec("gated-spirals"))
        assert created.status_code == 201, created.text
        study = wait_for(server.api, created.json()["id"], finished, timeout=300)
        assert study["status"] == "completed", study
        assert study["trial_counts"]["COMPLETE"] == 4
        best = server.api.get(f"/studies/{study['id']}/best").json()
        assert best["value"] > 0.9, best
    finally:
        server.stop()


def test_without_the_package_the_same_spec_is_a_422_naming_it(
    site: Path, tmp_path: Path, sqlite_url: str
) -> None:
    server = start_server(sqlite_url, tmp_path / "data", env={"TUNEFORGE_RUN_SCHEDULER": "false"})
    try:
        errors = refusal(server, "uninstalled")
        assert "unknown dataset 'spirals'" in errors["task.dataset.name"]
        on_digits = spec("uninstalled-family")
        on_digits["task"]["dataset"] = {"name": "digits"}
        answer = server.api.post("/studies", json=on_digits)
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["detail"]
        assert error["path"] == "task.model.family"
        assert "unknown model family 'gated_mlp'" in error["msg"]
    finally:
        server.stop()


def test_a_plugin_the_ray_workers_lack_is_a_422_naming_its_package(
    site: Path,
    tmp_path: Path,
    server_factory: Callable[..., Server],
    sqlite_url: str,
    ray_cluster: str,
) -> None:
    # The API's image has the package; the scheduler and the Ray cluster it runs on do not
    # (a process's sys.path reaches the Ray workers of its jobs: the scheduler must lack it).
    server = server_factory(
        sqlite_url, env={"PYTHONPATH": str(site), "TUNEFORGE_RUN_SCHEDULER": "false"}
    )
    scheduler = start_scheduler(sqlite_url, tmp_path / "data", ray_cluster)
    try:
        errors = refusal(server, "workers-lack-it")
        assert set(errors) == {"task.model.family", "task.dataset.name"}
        assert "plugin package tuneforge-example-plugin 0.1.0" in errors["task.model.family"]
        assert "Ray workers do not have (they lack it)" in errors["task.model.family"]
    finally:
        scheduler.stop()
