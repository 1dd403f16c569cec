"""Catalog plugins through the API (issue 19), on an in-process app with the example plugin
importable: the catalog lists its entries with their package and version; a study using them
is accepted while no scheduler has said what its workers have, and refused at the field that
names the plugin once the live schedulers' workers lack it. Through a live server on Ray:
``tests/e2e/test_plugins.py``."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.plugins import inventory
from service.store.orm import SchedulerRow
from tests.models._plugin import install, on_path
from tests.service.api._inprocess import _client

PLUGIN = {"package": "tuneforge-example-plugin", "version": "0.1.0"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    for _ in on_path(install(tmp_path / "site")):
        yield from _client(tmp_path / "data")


def study(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "search_space": {"model.width": {"type": "int", "low": 8, "high": 64}},
        "budget": {"max_trials": 4},
        "task": {
            "dataset": {"name": "spirals", "options": {"n_samples": 400}},
            "model": {"family": "gated_mlp", "layers": 2},
            "training": {"epochs": 5},
        },
    }


def live_scheduler(client: TestClient, name: str, plugins: dict[str, Any]) -> None:
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        now = time.time()
        session.add(
            SchedulerRow(
                id=name, host="h", pid=1, started_at=now, seen_until=now + 60, plugins=plugins
            )
        )
        session.commit()


def test_the_catalog_lists_plugin_entries_with_their_package(client: TestClient) -> None:
    catalog = client.get("/api/v1/catalog").json()
    assert catalog["families"]["gated_mlp"]["plugin"] == PLUGIN
    assert set(catalog["families"]["gated_mlp"]["fields"]) >= {"layers", "width", "dropout"}
    assert catalog["datasets"]["spirals"]["plugin"] == PLUGIN
    assert catalog["datasets"]["spirals"]["options"]["turns"]["high"] == 5.0
    assert catalog["functions"]["styblinski_tang"]["plugin"] == PLUGIN
    assert catalog["families"]["mlp"]["plugin"] is None
    assert catalog["datasets"]["digits"]["plugin"] is None


def test_a_study_naming_a_plugin_the_workers_lack_is_a_422_naming_it(client: TestClient) -> None:
    assert client.post("/api/v1/studies", json=study("before-any-look")).status_code == 201
    live_scheduler(client, "bare", {"families": {}, "datasets": {}, "functions": {}})
    refused = client.post("/api/v1/studies", json=study("workers-lack-it"))
    assert refused.status_code == 422, refused.text
    errors = {e["path"]: e["msg"] for e in refused.json()["detail"]}
    assert set(errors) == {"task.model.family", "task.dataset.name"}
    assert "tuneforge-example-plugin 0.1.0" in errors["task.model.family"]
    assert "install that package in the image of every Ray node" in errors["task.dataset.name"]
    names = [s["name"] for s in client.get("/api/v1/studies").json()["items"]]
    assert names == ["before-any-look"]  # nothing written for the refused one
    check = client.post("/api/v1/studies:check", json=study("checked"))
    assert check.status_code == 422  # the pre-flight check is validated the same way
    live_scheduler(client, "equipped", inventory())
    assert client.post("/api/v1/studies", json=study("workers-have-it")).status_code == 201
