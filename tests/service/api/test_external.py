"""External trials (issue 19) on an in-process app (real SQLite, no scheduler): ask, report,
tell and renew, each refusal's status and path. Leases expiring and the study ending on its
budget need the scheduler: ``tests/e2e/test_external.py``."""

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from search import registry

Spec = dict[str, Any]
SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
    "depth": {"type": "int", "low": 1, "high": 8},
    "kind": {"type": "categorical", "choices": ["a", "b", "c"]},
}


def external(**changes: Any) -> Spec:
    spec: Spec = {
        "name": "ext",
        "task": {"kind": "external", "metrics": ["val_loss", "acc"], "lease_s": 30},
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "algorithm": {"name": "tpe", "settings": {"seed": 0, "n_startup_trials": 2}},
        "search_space": SPACE,
        "budget": {"max_trials": 6},
        "parallelism": 2,
    }
    spec.update(changes)
    return spec


def submit(client: TestClient, spec: Spec) -> int:
    answer = client.post("/api/v1/studies", json=spec)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def ask(client: TestClient, study_id: int) -> dict[str, Any]:
    answer = client.post(f"/api/v1/studies/{study_id}/ask")
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def say(client: TestClient, study_id: int, asked: dict[str, Any], what: str, **body: Any) -> Any:
    url = f"/api/v1/studies/{study_id}/trials/{asked['number']}/{what}"
    return client.post(url, json={"lease": asked["lease"], **body})


def test_a_trial_asked_reported_and_told_lands_in_optuna_with_its_curve(
    client: TestClient,
) -> None:
    study_id = submit(client, external())
    asked = ask(client, study_id)
    assert asked["number"] == 0 and asked["seed"] == 0 and asked["lease_s"] == 30
    params = asked["params"]
    assert set(params) == set(SPACE) and 1e-4 <= params["lr"] <= 1.0
    assert params["kind"] in ("a", "b", "c") and 1 <= params["depth"] <= 8
    for step, loss in ((1, 0.9), (2, 0.5)):
        answer = say(client, study_id, asked, "report", step=step, metrics={"val_loss": loss})
        assert answer.status_code == 200, answer.text
        assert answer.json()["should_prune"] is False
    told = say(client, study_id, asked, "tell", metrics={"val_loss": 0.4, "acc": 0.9})
    assert told.status_code == 200, told.text
    trial = told.json()
    assert (trial["state"], trial["value"]) == ("COMPLETE", 0.4)
    assert [p["epoch"] for p in trial["learning_curve"]] == [1, 2]
    assert trial["final_metrics"] == {"val_loss": 0.4, "acc": 0.9}
    assert trial["intermediate_values"] == {"1": 0.9, "2": 0.5}
    report = client.get(f"/api/v1/studies/{study_id}/report")
    assert report.status_code == 200
    assert "its clients (external trials), reporting val_loss, acc" in report.text
    # Told: every later word about it is a conflict.
    again = say(client, study_id, asked, "tell", metrics={"val_loss": 0.1})
    assert again.status_code == 409 and "has finished (COMPLETE)" in again.json()["detail"]


def test_asking_beyond_parallelism_is_429_with_retry_after_and_the_budget_ends_asking(
    client: TestClient,
) -> None:
    study_id = submit(client, external(budget={"max_trials": 3}))
    first, second = ask(client, study_id), ask(client, study_id)
    assert first["params"] != second["params"]  # seeded by number: no repeat
    full = client.post(f"/api/v1/studies/{study_id}/ask")
    assert full.status_code == 429 and full.headers["Retry-After"] == "1"
    assert full.json()["quota"] == "parallelism" and full.json()["usage"] == 2
    assert say(client, study_id, first, "tell", state="fail", reason="OOM").status_code == 200
    third = ask(client, study_id)
    assert third["number"] == 2
    assert say(client, study_id, second, "tell", metrics={"val_loss": 1.0}).status_code == 200
    spent = client.post(f"/api/v1/studies/{study_id}/ask")
    assert spent.status_code == 409 and "all 3 trials" in spent.json()["detail"]
    failed = client.get(f"/api/v1/studies/{study_id}/trials/0").json()
    assert failed["state"] == "FAIL" and failed["user_attrs"]["fail_reason"] == "OOM"


def test_what_a_client_may_not_say_is_refused_with_its_reason(client: TestClient) -> None:
    study_id = submit(client, external())
    asked = ask(client, study_id)
    wrong = {**asked, "lease": "not-the-token"}
    stolen = say(client, study_id, wrong, "tell", metrics={"val_loss": 0.1})
    assert stolen.status_code == 409 and "not leased to this client" in stolen.json()["detail"]
    unknown = say(client, study_id, asked, "report", step=1, metrics={"loss": 1.0})
    assert unknown.status_code == 422
    assert [e["path"] for e in unknown.json()["detail"]] == ["metrics.loss"]
    assert say(client, study_id, asked, "report", step=2, metrics={"acc": 0.5}).status_code == 200
    back = say(client, study_id, asked, "report", step=2, metrics={"acc": 0.6})
    assert back.status_code == 422 and back.json()["detail"][0]["path"] == "step"
    zero = say(client, study_id, asked, "report", step=0, metrics={"acc": 0.6})
    assert zero.status_code == 422 and zero.json()["detail"][0]["path"] == "step"
    no_objective = say(client, study_id, asked, "tell", metrics={"acc": 0.7})
    assert no_objective.status_code == 422 and "val_loss" in no_objective.text
    missing = client.post(
        f"/api/v1/studies/{study_id}/trials/99/tell", json={"lease": asked["lease"]}
    )
    assert missing.status_code == 404
    renewed = say(client, study_id, asked, "renew")
    assert renewed.status_code == 200 and "lease_expires_at" in renewed.json()
    # Nothing of the refused ones was recorded: the trial runs on, its one report kept.
    trial = client.get(f"/api/v1/studies/{study_id}/trials/0").json()
    assert trial["state"] == "RUNNING"
    assert [p["epoch"] for p in trial["learning_curve"]] == [2]


def test_a_report_after_the_lease_expired_is_refused(client: TestClient) -> None:
    study_id = submit(
        client, external(task={"kind": "external", "metrics": ["val_loss"], "lease_s": 1})
    )
    asked = ask(client, study_id)
    time.sleep(1.2)
    late = say(client, study_id, asked, "report", step=1, metrics={"val_loss": 1.0})
    assert late.status_code == 409 and "expired" in late.json()["detail"]


def test_another_tenant_s_trials_are_not_found_and_a_trained_study_hands_none_out(
    client: TestClient,
) -> None:
    study_id = submit(client, external())
    asked = ask(client, study_id)
    key = client.post("/api/v1/keys", json={"tenant": "other"}).json()["key"]
    other = {"Authorization": f"Bearer {key}"}
    url = f"/api/v1/studies/{study_id}"
    assert client.post(f"{url}/ask", headers=other).status_code == 404
    body = {"lease": asked["lease"], "metrics": {"val_loss": 0.1}}
    assert client.post(f"{url}/trials/0/tell", json=body, headers=other).status_code == 404
    trained = {
        "name": "trained",
        "task": {"kind": "function", "name": "branin"},
        "search_space": {
            "x1": {"type": "float", "low": -5, "high": 10},
            "x2": {"type": "float", "low": 0, "high": 15},
        },
    }
    function_id = submit(client, trained)
    refused = client.post(f"/api/v1/studies/{function_id}/ask")
    assert refused.status_code == 409 and "task kind function" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            {"objective": {"metric": "f1", "direction": "maximize"}},
            "objective.metric",
            "not among task.metrics",
        ),
        (
            {"constraints": [{"metric": "size", "le": 3}]},
            "constraints[0].metric",
            "not among task.metrics",
        ),
        ({"algorithm": {"name": "pbt"}}, "algorithm.name", "an external task cannot"),
        ({"task": {"kind": "external"}}, "task", "task.metrics"),
        ({"task": {"kind": "external", "metrics": ["a b"]}}, "task.metrics", "no metric name"),
        (
            {"task": {"kind": "external", "metrics": ["x"], "lease_s": 0}},
            "task.lease_s",
            "greater than or equal",
        ),
        (
            {"task": {"kind": "external", "metrics": ["x"], "dataset": {"name": "digits"}}},
            "task",
            "belong to train tasks",
        ),
    ],
)
def test_a_bad_external_study_is_a_422_at_its_path(
    client: TestClient, change: Spec, path: str, words: str
) -> None:
    answer = client.post("/api/v1/studies", json=external(**change))
    assert answer.status_code == 422, answer.text
    found = {e["path"]: e["msg"] for e in answer.json()["detail"]}
    assert path in found and words in found[path], found


def test_an_external_study_names_its_objective(client: TestClient) -> None:
    spec = external()
    del spec["objective"]
    answer = client.post("/api/v1/studies", json=spec)
    assert answer.status_code == 422 and "needs objective" in answer.text


def test_asha_prunes_a_reported_trial_behind_the_others_at_its_rung(client: TestClient) -> None:
    pruner = {"name": "asha", "settings": {"min_resource": 1, "reduction_factor": 2}}
    study_id = submit(client, external(pruner=pruner, parallelism=1, budget={"max_trials": 5}))
    for loss in (0.3, 0.25, 0.2):  # each the best at its rungs so far: none pruned
        asked = ask(client, study_id)
        for step in (1, 2):
            answer = say(client, study_id, asked, "report", step=step, metrics={"val_loss": loss})
            assert answer.json()["should_prune"] is False
        say(client, study_id, asked, "tell", metrics={"val_loss": loss})
    bad = ask(client, study_id)
    verdict = say(client, study_id, bad, "report", step=1, metrics={"val_loss": 5.0}).json()
    assert verdict["should_prune"] is True and verdict["reason"]
    trial = client.get(f"/api/v1/studies/{study_id}/trials/{bad['number']}").json()
    assert trial["state"] == "PRUNED"
    assert (
        trial["user_attrs"]["pruned_at_rung"] == 0 and trial["user_attrs"]["pruned_at_epoch"] == 1
    )
    late = say(client, study_id, bad, "report", step=2, metrics={"val_loss": 5.0})
    assert late.status_code == 409 and "PRUNED" in late.json()["detail"]


@pytest.mark.parametrize("name", registry.names("sampler"))
def test_every_sampler_proposes_external_trials(client: TestClient, name: str) -> None:
    space = {
        "a": {"type": "categorical", "choices": [1, 2, 3]},
        "b": {"type": "categorical", "choices": ["x", "y"]},
    }
    n_objectives = 2 if name in ("nsga2", "nsga3") else 1
    objectives = [
        {"metric": "val_loss", "direction": "minimize"},
        {"metric": "acc", "direction": "maximize"},
    ]
    spec = external(algorithm={"name": name, "settings": {}}, search_space=space, parallelism=1)
    del spec["objective"]
    spec["objectives"] = objectives[:n_objectives]
    if name == "bohb":  # its brackets are epochs of a training on the cluster
        answer = client.post("/api/v1/studies", json=spec)
        assert answer.status_code == 422 and "trains networks" in answer.text
        return
    study_id = submit(client, spec)
    seen = []
    for _ in range(5):
        asked = ask(client, study_id)
        params = asked["params"]
        seen.append(params)
        assert params["a"] in (1, 2, 3) and params["b"] in ("x", "y")
        metrics = {"val_loss": float(params["a"]), "acc": 1.0 if params["b"] == "x" else 0.0}
        told = say(client, study_id, asked, "tell", metrics=metrics)
        assert told.status_code == 200 and told.json()["state"] == "COMPLETE", told.text
    assert len(seen) == 5


def test_warm_start_points_and_enqueued_trials_are_handed_out_first(client: TestClient) -> None:
    point = {"lr": 0.01, "depth": 3, "kind": "b"}
    study_id = submit(client, external(warm_start={"points": [point]}))
    queued = client.post(f"/api/v1/studies/{study_id}/trials", json={"params": {"depth": 7}})
    assert queued.status_code == 201, queued.text
    first, second = ask(client, study_id), ask(client, study_id)
    assert first["params"] == point
    assert second["params"]["depth"] == 7 and set(second["params"]) == set(SPACE)


def test_constraints_are_checked_on_the_told_metrics_and_the_best_is_feasible(
    client: TestClient,
) -> None:
    spec = external(constraints=[{"metric": "acc", "ge": 0.5}], parallelism=1)
    study_id = submit(client, spec)
    for loss, acc in ((0.1, 0.2), (0.3, 0.9)):  # the lower loss breaks the constraint
        asked = ask(client, study_id)
        told = say(client, study_id, asked, "tell", metrics={"val_loss": loss, "acc": acc})
        assert told.status_code == 200, told.text
    infeasible = client.get(f"/api/v1/studies/{study_id}/trials/0").json()["user_attrs"]
    assert infeasible["feasible"] is False
    assert infeasible["infeasible_reason"] == "infeasible: acc 0.2 < 0.5"
    best = client.get(f"/api/v1/studies/{study_id}/best").json()
    assert (best["number"], best["value"]) == (1, 0.3)


def test_multi_objective_asha_prunes_a_dominated_external_trial(client: TestClient) -> None:
    objectives = [
        {"metric": "val_loss", "direction": "minimize"},
        {"metric": "acc", "direction": "maximize"},
    ]
    pruner = {"name": "mo_asha", "settings": {"min_resource": 1, "reduction_factor": 2}}
    spec = external(pruner=pruner, parallelism=1, algorithm={"name": "nsga2", "settings": {}})
    del spec["objective"]
    study_id = submit(client, {**spec, "objectives": objectives})
    for loss, acc in ((0.3, 0.8), (0.2, 0.9)):  # each non-dominated when it reports
        asked = ask(client, study_id)
        metrics = {"val_loss": loss, "acc": acc}
        verdict = say(client, study_id, asked, "report", step=1, metrics=metrics).json()
        assert verdict["should_prune"] is False, verdict
        say(client, study_id, asked, "tell", metrics=metrics)
    dominated = ask(client, study_id)
    metrics = {"val_loss": 0.9, "acc": 0.1}
    verdict = say(client, study_id, dominated, "report", step=1, metrics=metrics).json()
    assert verdict["should_prune"] is True and "mo_asha" in verdict["reason"], verdict
    trial = client.get(f"/api/v1/studies/{study_id}/trials/{dominated['number']}").json()
    assert trial["state"] == "PRUNED" and trial["user_attrs"]["pruned_at_rung"] == 0


def test_trials_out_with_clients_count_in_the_tenant_s_quota_of_trials_in_flight(
    client: TestClient,
) -> None:
    key = client.post("/api/v1/keys", json={"tenant": "team"}).json()["key"]
    team = {"Authorization": f"Bearer {key}"}
    put = client.put("/api/v1/tenants/team/quota", json={"trials_in_flight": 3})
    assert put.status_code == 200, put.text
    ids = []
    for name in ("a", "b"):
        made = client.post("/api/v1/studies", json=external(name=name), headers=team)
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    out = [client.post(f"/api/v1/studies/{i}/ask", headers=team) for i in (ids[0], ids[0], ids[1])]
    assert [o.status_code for o in out] == [201, 201, 201]
    full = client.post(f"/api/v1/studies/{ids[1]}/ask", headers=team)
    assert full.status_code == 429 and full.headers["Retry-After"] == "1", full.text
    assert full.json()["quota"] == "trials in flight per tenant" and full.json()["usage"] == 3
    # Another tenant's asks are not held back by this one's trials.
    assert ask(client, submit(client, external(name="mine")))["number"] == 0
    first = out[0].json()
    told = client.post(
        f"/api/v1/studies/{ids[0]}/trials/{first['number']}/tell",
        json={"lease": first["lease"], "metrics": {"val_loss": 0.5}},
        headers=team,
    )
    assert told.status_code == 200, told.text
    assert client.post(f"/api/v1/studies/{ids[1]}/ask", headers=team).status_code == 201
