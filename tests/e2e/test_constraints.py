"""Outcome constraints end to end through the API: a NAS study with ``param_count <= N`` over a
space where most architectures are too large trains none of them (each rejected before its
first epoch, with its reason), its best trial and report are feasible, and bad constraints are
422s at their path."""

from typing import Any

import httpx
import pytest

from tests.conftest import Server, finished, wait_for

pytestmark = pytest.mark.slow

LIMIT = 3000  # 14 of the space's 32 architectures have at most this many parameters


def constrained_study(name: str, **overrides: Any) -> dict[str, Any]:
    """The macro space of ``tests/e2e/test_nas.py`` (digits, 1010 to 8186 parameters)."""
    spec: dict[str, Any] = {
        "name": name,
        "algorithm": {"name": "tpe", "settings": {"seed": 5, "n_startup_trials": 4}},
        "architecture": {
            "kind": "macro",
            "stages": [
                {"block": ["plain", "residual"], "width": [8, 16], "depth": [1], "skip": [True]},
                {"block": ["plain", "inception"], "width": [16, 32], "depth": [1]},
            ],
        },
        "constraints": [
            {"metric": "param_count", "le": LIMIT},
            {"metric": "latency_ms", "le": 1000},  # timed before training; always met here
        ],
        "budget": {"max_trials": 12, "max_failed_trials": 1},
        "parallelism": 2,
        "task": {"dataset": {"name": "digits"}, "training": {"epochs": 3, "lr": 0.01}},
    }
    spec.update(overrides)
    return spec


def test_no_infeasible_architecture_is_trained(server: Server) -> None:
    api = server.api
    created = api.post("/studies", json=constrained_study("nas-param-limit"))
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["constraints"][0] == {
        "metric": "param_count",
        "le": LIMIT,
        "ge": None,
    }
    study = wait_for(api, created.json()["id"], finished, timeout=300)
    # Rejections are no failures: max_failed_trials 1 would have ended the study otherwise.
    assert study["status"] == "completed", study
    trials = api.get(f"/studies/{study['id']}/trials", params={"limit": 100}).json()["items"]
    assert len(trials) == 12
    rejected = [t for t in trials if t["state"] == "PRUNED"]
    trained = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(rejected) + len(trained) == 12, [t["state"] for t in trials]
    assert rejected and trained, "the space mixes feasible and infeasible architectures"
    print(
        f"param_count <= {LIMIT}: {len(rejected)} rejected before training, {len(trained)} trained"
    )
    for t in rejected:
        attrs = t["user_attrs"]
        assert t["feasible"] is False
        assert attrs["param_count"] > LIMIT
        assert attrs["pruned_reason"] == f"infeasible: param_count {attrs['param_count']} > {LIMIT}"
        assert attrs["pruned_at_epoch"] == 0
        assert t["intermediate_values"] == {}
        assert attrs.get("epochs", 0) == 0  # no epoch was spent on it
        detail = api.get(f"/studies/{study['id']}/trials/{t['number']}").json()
        assert detail["learning_curve"] == []
        assert attrs["violations"] == {f"param_count<={LIMIT}": attrs["param_count"] - LIMIT}
    for t in trained:
        # The count measured after training agrees with the one made before it.
        assert t["feasible"] is True, t
        assert t["user_attrs"]["param_count"] <= LIMIT
        assert t["user_attrs"]["epochs"] == 3
        assert set(t["user_attrs"]["violations"]) == {f"param_count<={LIMIT}", "latency_ms<=1000"}
    best = api.get(f"/studies/{study['id']}/best").json()
    assert best["feasible"] is True and best["user_attrs"]["param_count"] <= LIMIT
    assert best["value"] == max(t["value"] for t in trained)
    assert study["best_value"] == best["value"]
    report = api.get(f"/studies/{study['id']}/report").text
    assert '<section id="feasibility">' in report
    checked = f"Feasible: {len(trained)} of 12 trials checked; infeasible: {len(rejected)}"
    assert checked in report
    assert f"({len(rejected)} rejected before training, 0 epochs)" in report


@pytest.mark.parametrize(
    ("constraint", "reason"),
    [
        ({"metric": "param_count", "le": 500}, "infeasible: param_count "),
        # every network takes more than a nanosecond a sample: timed, then never trained
        ({"metric": "latency_ms", "le": 1e-6}, "infeasible: latency_ms "),
    ],
    ids=["param_count", "latency_ms"],
)
def test_a_study_whose_every_point_is_infeasible_trains_nothing(
    server: Server, constraint: dict[str, Any], reason: str
) -> None:
    spec = constrained_study(
        f"nas-nothing-fits-{constraint['metric']}",
        constraints=[constraint],
        budget={"max_trials": 5},
    )
    created = server.api.post("/studies", json=spec)
    assert created.status_code == 201, created.text
    study = wait_for(server.api, created.json()["id"], finished, timeout=120)
    assert study["status"] == "completed", study
    assert study["trial_counts"]["PRUNED"] == 5 and study["best_value"] is None
    trials = server.api.get(f"/studies/{study['id']}/trials").json()["items"]
    for t in trials:
        attrs = t["user_attrs"]
        assert attrs["pruned_reason"].startswith(reason) and attrs["pruned_at_epoch"] == 0
        assert t["intermediate_values"] == {} and attrs.get("epochs", 0) == 0
        assert t["feasible"] is False
    missing = server.api.get(f"/studies/{study['id']}/best")
    assert missing.status_code == 404, missing.text


@pytest.mark.parametrize(
    ("constraints", "path", "words"),
    [
        ([{"metric": "nope", "le": 1}], "constraints[0].metric", "unknown metric"),
        ([{"metric": "param_count"}], "constraints[0]", "exactly one of le or ge"),
        ([{"metric": "param_count", "le": 1, "ge": 0}], "constraints[0]", "exactly one"),
        ([{"metric": "val_rmse", "le": 1}], "constraints[0].metric", "regression"),
        ([{"metric": "param_count", "below": 1}], "constraints[0].below", "Extra inputs"),
    ],
)
def test_bad_constraints_are_422_at_their_path(
    server: Server, constraints: list[dict[str, Any]], path: str, words: str
) -> None:
    name = f"bad-constraint-{len(path)}-{len(words)}"
    resp: httpx.Response = server.api.post(
        "/studies", json=constrained_study(name, constraints=constraints)
    )
    assert resp.status_code == 422, resp.text
    detail = {d["path"]: d["msg"] for d in resp.json()["detail"]}
    assert path in detail and words in detail[path], detail
    listed = server.api.get("/studies", params={"limit": 200}).json()["items"]
    assert name not in [s["name"] for s in listed]  # nothing half-written
