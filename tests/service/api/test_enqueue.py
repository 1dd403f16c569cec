"""Expert suggestions (issue 19): ``POST /studies/{id}/trials`` queues a trial with given
parameters, checked against the study's search space; on an in-process app (real SQLite, no
scheduler). That the loop runs a queued trial next: ``tests/e2e/test_enqueue.py``."""

from typing import Any

from fastapi.testclient import TestClient

from tests.service.api._validation import Spec

POINT = {"model.hidden_layers": 2, "model.width": 128, "training.lr": 0.003}


def queued(client: TestClient, study_id: int) -> list[dict[str, Any]]:
    page = client.get(f"/api/v1/studies/{study_id}/trials", params={"state": "WAITING"})
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def test_a_trial_is_queued_with_its_params_and_who_asked(
    client: TestClient, base_spec: Spec
) -> None:
    study_id = client.post("/api/v1/studies", json=base_spec).json()["id"]
    answer = client.post(
        f"/api/v1/studies/{study_id}/trials", json={"params": POINT, "note": "last week's best"}
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["number"], body["state"], body["params"]) == (0, "WAITING", POINT)
    assert body["enqueued"].endswith(": last week's best")
    [trial] = queued(client, study_id)
    assert trial["number"] == 0 and trial["user_attrs"] == {"enqueued": body["enqueued"]}
    second = client.post(f"/api/v1/studies/{study_id}/trials", json={"params": {"model.width": 64}})
    assert second.status_code == 201 and second.json()["number"] == 1


def test_params_outside_the_space_are_refused_at_their_path_and_nothing_is_queued(
    client: TestClient, base_spec: Spec
) -> None:
    study_id = client.post("/api/v1/studies", json=base_spec).json()["id"]
    bad = {"training.lr": 0.5, "model.activation": "swish", "model.depth": 3}
    answer = client.post(f"/api/v1/studies/{study_id}/trials", json={"params": bad})
    assert answer.status_code == 422, answer.text
    paths = {e["path"]: e["msg"] for e in answer.json()["detail"]}
    assert set(paths) == {
        'params["training.lr"]',
        'params["model.activation"]',
        'params["model.depth"]',
    }
    assert "outside training.lr's range" in paths['params["training.lr"]']
    assert "not a parameter of the search space" in paths['params["model.depth"]']
    wrong_type = client.post(f"/api/v1/studies/{study_id}/trials", json={"params": {"x": [1]}})
    assert wrong_type.status_code == 422
    assert queued(client, study_id) == []


def test_a_study_whose_budget_is_taken_takes_no_more(client: TestClient, base_spec: Spec) -> None:
    spec = {**base_spec, "budget": {"max_trials": 2}}
    study_id = client.post("/api/v1/studies", json=spec).json()["id"]
    for _ in range(2):
        assert client.post(f"/api/v1/studies/{study_id}/trials", json={"params": POINT}).is_success
    full = client.post(f"/api/v1/studies/{study_id}/trials", json={"params": POINT})
    assert full.status_code == 409 and "max_trials 2" in full.json()["detail"]
    assert len(queued(client, study_id)) == 2


def test_another_tenant_s_study_is_not_found(client: TestClient, base_spec: Spec) -> None:
    study_id = client.post("/api/v1/studies", json=base_spec).json()["id"]
    key = client.post("/api/v1/keys", json={"tenant": "other"}).json()["key"]
    other = TestClient(client.app)
    other.headers["Authorization"] = f"Bearer {key}"
    answer = other.post(f"/api/v1/studies/{study_id}/trials", json={"params": POINT})
    assert answer.status_code == 404
    assert queued(client, study_id) == []


def test_a_conditional_parameter_its_point_switches_off_is_refused(
    client: TestClient, base_spec: Spec
) -> None:
    space = {
        **base_spec["search_space"],
        "training.optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
        "training.momentum": {
            "type": "float",
            "low": 0.0,
            "high": 0.99,
            "when": [{"param": "training.optimizer", "in": ["sgd"]}],
        },
    }
    study_id = client.post("/api/v1/studies", json={**base_spec, "search_space": space}).json()[
        "id"
    ]
    off = {"training.optimizer": "adam", "training.momentum": 0.9}
    answer = client.post(f"/api/v1/studies/{study_id}/trials", json={"params": off})
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["path"] == 'params["training.momentum"]'
    assert "not used when training.optimizer is 'adam'" in error["msg"]
    on = {"training.optimizer": "sgd", "training.momentum": 0.9}
    assert client.post(f"/api/v1/studies/{study_id}/trials", json={"params": on}).status_code == 201
