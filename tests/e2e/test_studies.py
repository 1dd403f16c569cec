"""End to end through the HTTP API: a real uvicorn server, a real local Ray, real training,
real SQLite and PostgreSQL. What lands in the database is read back the way users will:
``optuna.load_study`` and optuna-dashboard's own WSGI app.
"""

import re
from collections.abc import Callable
from typing import Any

import httpx
import optuna
import pytest
from optuna_dashboard import wsgi

from tests.conftest import Server, finished, wait_for

pytestmark = pytest.mark.slow

EPOCHS = 3
NODE_ID = re.compile(r"^[0-9a-f]{56}$")


def mixed_spec(**overrides: Any) -> dict[str, Any]:
    """A digits study whose lr choice 1e6 makes SGD diverge: those trials fail, others pass."""
    spec: dict[str, Any] = {
        "name": "e2e-digits",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "algorithm": {"name": "random", "settings": {"seed": 0}},
        "search_space": {
            "training.lr": {"type": "categorical", "choices": [0.05, 1e6]},
            "model.width": {"type": "int", "low": 16, "high": 64, "log": True},
        },
        "budget": {"max_trials": 6},
        "parallelism": 2,
        "resources": {"cpu": 1},
        "task": {
            "dataset": {"name": "digits"},
            "model": {"family": "mlp", "hidden_layers": 1},
            "training": {"epochs": EPOCHS, "optimizer": "sgd", "momentum": 0.9},
        },
    }
    spec.update(overrides)
    return spec


def dashboard_get(url: str, path: str) -> Any:
    """GET from optuna-dashboard's own app, served in-process over WSGI."""
    with httpx.Client(transport=httpx.WSGITransport(app=wsgi(url)), base_url="http://dash") as c:
        resp = c.get(path)
        resp.raise_for_status()
        return resp.json()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def test_study_runs_on_ray_and_lands_in_optuna(
    database_url: str, server_factory: Callable[..., Server]
) -> None:
    server = server_factory(database_url)
    api = server.api
    created = api.post("/studies", json=mixed_spec(budget={"max_trials": 6, "timeout_s": 900}))
    assert created.status_code == 201, created.text
    study_id = created.json()["id"]
    optuna_name = created.json()["optuna_study_name"]

    study = wait_for(api, study_id, finished)
    assert study["status"] == "completed", study
    assert study["status_reason"] == "max_trials reached"
    counts = study["trial_counts"]
    assert counts["COMPLETE"] + counts["FAIL"] == 6
    assert counts["COMPLETE"] >= 1 and counts["FAIL"] >= 1, counts
    assert counts["RUNNING"] == 0

    trials = api.get(f"/studies/{study_id}/trials").json()
    assert trials["total"] == 6
    node_ids = set()
    for t in trials["items"]:
        assert NODE_ID.match(t["node_id"]), t
        node_ids.add(t["node_id"])
        if t["state"] == "COMPLETE":
            assert t["params"]["training.lr"] == 0.05
            assert list(t["intermediate_values"]) == ["1", "2", "3"]
            assert t["value"] == t["intermediate_values"][str(EPOCHS)]
            assert 0.5 < t["value"] <= 1.0
            assert t["fail_reason"] is None
        else:
            assert t["state"] == "FAIL"
            assert t["params"]["training.lr"] == 1e6
            assert t["fail_reason"] == "NonFiniteLossError: non-finite loss at epoch 1"
            assert t["value"] is None
    assert len(node_ids) == 1  # one local Ray node ran every trial

    # Pagination and state filter.
    page = api.get(f"/studies/{study_id}/trials", params={"offset": 2, "limit": 2}).json()
    assert [t["number"] for t in page["items"]] == [2, 3]
    assert page["total"] == 6
    failed = api.get(f"/studies/{study_id}/trials", params={"state": "FAIL"}).json()
    assert failed["total"] == counts["FAIL"]

    # Trial detail carries the learning curve; best is the top completed trial.
    complete = [t for t in trials["items"] if t["state"] == "COMPLETE"]
    top = max(complete, key=lambda t: t["value"])
    best = api.get(f"/studies/{study_id}/best").json()
    assert best["number"] == top["number"] and best["value"] == top["value"]
    assert study["best_value"] == top["value"]
    curve = best["learning_curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3]
    assert set(curve[0]["metrics"]) == {
        "train_loss",
        "val_loss",
        "val_accuracy",
        "val_f1_macro",
        "val_gap",
        "grad_norm",
        "lr",
    }
    assert curve[best["user_attrs"]["best_epoch"] - 1]["metrics"]["val_accuracy"] == best["value"]

    # What Optuna itself reads from the same database.
    loaded = optuna.load_study(study_name=optuna_name, storage=database_url)
    assert len(loaded.trials) == 6
    assert loaded.direction == optuna.study.StudyDirection.MAXIMIZE
    assert loaded.best_value == top["value"]
    for ft in loaded.trials:
        assert ft.user_attrs["node_id"] in node_ids
        assert set(ft.params) == {"training.lr", "model.width"}
        if ft.state == optuna.trial.TrialState.COMPLETE:
            assert sorted(ft.intermediate_values) == [1, 2, 3]
            assert ft.value == ft.intermediate_values[3]
        else:
            assert ft.state == optuna.trial.TrialState.FAIL
            assert "non-finite loss" in ft.user_attrs["fail_reason"]

    # optuna-dashboard's own app lists the study and its trials.
    listed = dashboard_get(database_url, "/api/studies")["study_summaries"]
    entry = next(s for s in listed if s["study_name"] == optuna_name)
    detail = dashboard_get(database_url, f"/api/studies/{entry['study_id']}")
    assert len(detail["trials"]) == 6
    assert {t["state"] for t in detail["trials"]} == {"Complete", "Fail"}
    assert any(a["key"] == "node_id" for a in detail["trials"][0]["user_attrs"])

    # Extending the budget resumes the finished study and counts on from 6.
    patched = api.patch(f"/studies/{study_id}", json={"budget": {"max_trials": 8}})
    assert patched.status_code == 200 and patched.json()["status"] == "pending"
    budget = patched.json()["spec"]["budget"]
    assert budget == {
        "max_trials": 8,
        "max_failed_trials": None,
        "timeout_s": 900,
        "target_value": None,
    }
    study = wait_for(api, study_id, lambda s: s["status"] == "completed")
    assert sum(study["trial_counts"].values()) == 8

    # Delete removes the row and the Optuna study.
    assert api.delete(f"/studies/{study_id}").status_code == 204
    assert api.get(f"/studies/{study_id}").status_code == 404
    assert optuna_name not in optuna.get_all_study_names(storage=database_url)


def test_max_failed_trials_ends_a_failing_study(shared_server: Server) -> None:
    api = shared_server.api
    spec = mixed_spec(
        search_space={"model.width": {"type": "int", "low": 8, "high": 16}},
        budget={"max_trials": 10, "max_failed_trials": 2},
        parallelism=1,
    )
    spec["task"]["training"]["lr"] = 1e6  # every trial diverges
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]
    study = wait_for(api, study_id, finished)
    assert study["status"] == "failed"
    assert study["status_reason"] == "max_failed_trials reached: 2 trials failed"
    assert study["trial_counts"]["FAIL"] == 2
    assert sum(study["trial_counts"].values()) == 2
    assert api.get(f"/studies/{study_id}/best").status_code == 404


def test_study_needing_a_missing_gpu_fails_with_reason(shared_server: Server) -> None:
    api = shared_server.api
    spec = mixed_spec(resources={"cpu": 1, "gpu": 0.25})
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]
    study = wait_for(api, study_id, finished, timeout=30)
    assert study["status"] == "failed"
    assert study["status_reason"].startswith("no Ray node can run a trial")
    assert "gpu=0.25" in study["status_reason"]
    assert sum(study["trial_counts"].values()) == 0


def test_stop_cancels_trials_in_flight(shared_server: Server) -> None:
    api = shared_server.api
    spec = mixed_spec(search_space={}, budget={"max_trials": 50})
    # Epochs of 180 small steps: a trial reports about 20 epochs a second, which a loaded
    # scheduler keeps up with (with 500 epochs of 23 steps each, a trial was over before the
    # scheduler, behind on its events, had recorded its first epoch).
    spec["task"]["training"].update(lr=0.01, epochs=2000, batch_size=8)
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]

    seen: list[dict[str, Any]] = []

    def training(study: dict[str, Any]) -> bool:
        seen[:] = api.get(f"/studies/{study_id}/trials").json()["items"]
        # Two trials in flight, both past their first epoch. (On a loaded machine the second
        # trial's worker can take long enough to start that the first trains all its epochs:
        # that one is complete before the stop, and a third is the one in flight.)
        return sum(t["state"] == "RUNNING" and bool(t["intermediate_values"]) for t in seen) == 2

    try:
        wait_for(api, study_id, training)
    finally:  # never left training 2,000 epochs a trial on the shared server for later tests
        stopped = api.post(f"/studies/{study_id}/stop")
    started = len(seen)
    assert stopped.status_code == 202
    study = wait_for(api, study_id, finished, timeout=30)
    assert study["status"] == "stopped"
    assert study["trial_counts"]["RUNNING"] == 0
    items = api.get(f"/studies/{study_id}/trials").json()["items"]
    assert len(items) == started  # no trial started after the stop
    in_flight = [t for t in items if t["state"] != "COMPLETE"]
    assert len(in_flight) == 2  # the two trials in flight at the stop, each cut short
    for t in in_flight:
        assert t["state"] == "FAIL" and t["fail_reason"] == "stopped by user"
        assert len(t["intermediate_values"]) < 500
