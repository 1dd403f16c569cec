"""The search controls end to end through the API, on the shared server: conditional
parameters, target value, draining stop, warm starts, reproducibility.
"""

import pytest

from tests.conftest import Server, finished, wait_for
from tests.e2e._search import run, small_study

pytestmark = pytest.mark.slow


def test_conditional_parameters_are_sampled_only_when_active(server: Server) -> None:
    spec = small_study(
        "conditional",
        algorithm={"name": "tpe", "settings": {"seed": 4, "n_startup_trials": 2}},
        budget={"max_trials": 8},
        search_space={
            "training.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
            "training.momentum": {
                "type": "float",
                "low": 0.5,
                "high": 0.95,
                "when": [{"param": "training.optimizer", "in": ["sgd"]}],
            },
            "model.hidden_layers": {"type": "int", "low": 1, "high": 3},
            "model.dropout": {
                "type": "float",
                "low": 0.0,
                "high": 0.5,
                "when": [{"param": "model.hidden_layers", "gt": 1}],
            },
        },
    )
    study, trials = run(server, spec)
    assert study["status"] == "completed"
    optimizers = {t["params"]["training.optimizer"] for t in trials}
    assert optimizers == {"sgd", "adam"}
    for t in trials:
        p = t["params"]
        assert ("training.momentum" in p) == (p["training.optimizer"] == "sgd")
        assert ("model.dropout" in p) == (p["model.hidden_layers"] > 1)


def test_target_value_ends_the_study(server: Server) -> None:
    spec = small_study(
        "target",
        budget={"max_trials": 40, "target_value": 0.8},
        parallelism=1,
        algorithm={"name": "random", "settings": {"seed": 5}},
    )
    spec["task"]["training"]["epochs"] = 20
    study, trials = run(server, spec)
    assert study["status"] == "completed"
    assert study["status_reason"].startswith("target value 0.8 reached by trial")
    assert len(trials) < 40
    assert trials[-1]["value"] >= 0.8
    assert all(t["value"] < 0.8 for t in trials[:-1])


def test_drain_lets_running_trials_finish(server: Server) -> None:
    spec = small_study("drain", budget={"max_trials": 50}, search_space={})
    # Long enough that neither trial ends (and a third starts) before the drain lands.
    epochs = spec["task"]["training"]["epochs"] = 600
    api = server.api
    study_id = api.post("/studies", json=spec).raise_for_status().json()["id"]
    wait_for(api, study_id, lambda s: s["trial_counts"]["RUNNING"] == 2)
    assert api.post(f"/studies/{study_id}/stop", params={"drain": "true"}).status_code == 202
    study = wait_for(api, study_id, finished, timeout=300)
    assert study["status"] == "stopped"
    assert study["status_reason"] == "stopped by user after its trials finished"
    trials = api.get(f"/studies/{study_id}/trials").json()["items"]
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(len(t["intermediate_values"]) == epochs for t in trials)


def test_warm_start_points_and_trials_from_another_study(server: Server) -> None:
    first, first_trials = run(
        server, small_study("source", algorithm={"name": "random", "settings": {"seed": 6}})
    )
    point = {"training.lr": 0.02, "model.width": 16, "model.activation": "tanh"}
    spec = small_study(
        "warm",
        algorithm={"name": "tpe", "settings": {"seed": 6}},
        warm_start={"points": [point], "from_study": first["id"]},
        budget={"max_trials": 3},
    )
    _study, trials = run(server, spec)
    copied = [t for t in trials if str(t["user_attrs"].get("warm_start", "")).startswith("study")]
    run_here = [t for t in trials if t not in copied]
    assert len(copied) == 4 and len(run_here) == 3  # copies do not use the budget
    assert sorted(t["value"] for t in copied) == sorted(t["value"] for t in first_trials)
    assert run_here[0]["params"] == point and run_here[0]["user_attrs"]["warm_start"] == "point"


def test_same_study_twice_gives_the_same_trials(server: Server) -> None:
    spec = small_study(
        "repro",
        algorithm={"name": "tpe", "settings": {"n_startup_trials": 2}},
        parallelism=1,
        seed=7,
    )
    _, a = run(server, spec)
    _, b = run(server, spec)
    assert [(t["params"], t["value"]) for t in a] == [(t["params"], t["value"]) for t in b]
    _, c = run(server, {**spec, "seed": 8})
    assert [t["params"] for t in c] != [t["params"] for t in a]
