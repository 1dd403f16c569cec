"""Jobs over the API, on an in-process app with no scheduler: a pre-flight check or an
ensemble is validated like a study, written as a pending job and read back, tenant-scoped."""

import copy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.routes.jobs import MAX_JOBS_IN_FLIGHT
from service.store import jobs
from tests.service.api._validation import Spec

CHECK = "/api/v1/studies:check"


def _key(client: TestClient, tenant: str) -> dict[str, str]:
    resp = client.post("/api/v1/keys", json={"tenant": tenant})
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['key']}"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("task", "model", "family"), "nope"),
        (("task", "training", "lr"), -1.0),
        (("search_space", "model.width", "low"), 10_000),
        (("task", "dataset", "name"), "no-such-set"),
    ],
)
def test_a_check_is_validated_as_a_study_is(
    client: TestClient, base_spec: Spec, path: tuple[str, ...], value: object
) -> None:
    spec = copy.deepcopy(base_spec)
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    checked = client.post(CHECK, json=spec)
    submitted = client.post("/api/v1/studies", json=spec)
    assert checked.status_code == submitted.status_code == 422
    assert checked.json() == submitted.json()  # the same paths and messages
    with client.app.state.sessionmaker() as s:
        assert jobs.claimable(s, 10) == []  # nothing written


def test_a_function_study_has_nothing_to_check(client: TestClient) -> None:
    spec = {
        "name": "f",
        "objective": {"metric": "value", "direction": "minimize"},
        "search_space": {"x": {"type": "float", "low": -1, "high": 1}},
        "budget": {"max_trials": 2},
        "task": {"kind": "function", "name": "sphere"},
    }
    assert client.post("/api/v1/studies", json=spec).status_code == 201  # a valid study
    resp = client.post(CHECK, json=spec)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "task", "kind"]


def test_a_check_is_a_pending_job_of_its_tenant(client: TestClient, base_spec: Spec) -> None:
    resp = client.post(CHECK, json=base_spec, params={"points": 2, "seed": 7})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert (job["kind"], job["status"], job["result"]) == ("preflight", "pending", None)
    assert job["request"] == {"name": base_spec["name"], "points": 2, "seed": 7}
    again = client.get(f"/api/v1/jobs/{job['id']}", params={"wait": 0.3})
    assert again.status_code == 202 and again.json()["status"] == "pending"  # no scheduler
    other = _key(client, "globex")
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=other).status_code == 404
    assert client.get("/api/v1/jobs/999").status_code == 404
    # Stored for the scheduler: the completed spec, every default spelled out.
    with client.app.state.sessionmaker() as s:
        row = jobs.get_job(s, job["id"])
        assert row.request["spec"]["task"]["training"]["batch_size"] == 64


def test_points_and_wait_are_bounded(client: TestClient, base_spec: Spec) -> None:
    for params in ({"points": 0}, {"points": 9}, {"wait": 61}, {"wait": -1}):
        resp = client.post(CHECK, json=base_spec, params=params)
        assert resp.status_code == 422, params
        assert resp.json()["detail"][0]["loc"][0] == "query"


def test_a_tenant_has_a_few_jobs_in_flight_at_most(client: TestClient, base_spec: Spec) -> None:
    for _ in range(MAX_JOBS_IN_FLIGHT):
        assert client.post(CHECK, json=base_spec).status_code == 202
    refused = client.post(CHECK, json=base_spec)
    assert refused.status_code == 429
    assert "jobs in flight" in refused.json()["detail"]
    other = _key(client, "globex")  # another tenant is not held up
    assert client.post(CHECK, json=base_spec, headers=other).status_code == 202


def test_an_ensemble_request_is_checked(client: TestClient, base_spec: Spec) -> None:
    study = client.post("/api/v1/studies", json=base_spec).json()
    url = f"/api/v1/studies/{study['id']}/ensembles"
    for body in ({"top_k": 1}, {"top_k": 51}, {"method": "stack"}, {"k": 3}):
        resp = client.post(url, json=body)
        assert resp.status_code == 422, body
        assert resp.json()["detail"][0]["loc"][:1] == ["body"]
    assert client.post("/api/v1/studies/999/ensembles", json={}).status_code == 404
    other = _key(client, "globex")
    assert client.post(url, json={}, headers=other).status_code == 404
    resp = client.post(url, json={"top_k": 3, "method": "greedy"})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert (job["kind"], job["study_id"], job["request"]) == (
        "ensemble",
        study["id"],
        {"top_k": 3, "method": "greedy"},
    )
    assert [j["id"] for j in client.get(url).json()["items"]] == [job["id"]]
    # Not built yet: nothing to download.
    got = client.get(f"{url}/{job['id']}/artifacts/torchscript")
    assert got.status_code == 404


def test_a_regression_study_has_no_ensemble(client: TestClient, base_spec: Spec) -> None:
    spec = copy.deepcopy(base_spec)
    spec["task"]["dataset"] = {"name": "diabetes"}
    spec["objective"] = {"metric": "val_rmse", "direction": "minimize"}
    study = client.post("/api/v1/studies", json=spec)
    assert study.status_code == 201, study.text
    resp = client.post(f"/api/v1/studies/{study.json()['id']}/ensembles", json={})
    assert resp.status_code == 409
    assert "regression" in resp.json()["detail"]


def test_jobs_go_with_their_study(client: TestClient, base_spec: Spec, tmp_path: Path) -> None:
    study = client.post("/api/v1/studies", json=base_spec).json()
    job = client.post(f"/api/v1/studies/{study['id']}/ensembles", json={}).json()
    client.post(f"/api/v1/studies/{study['id']}/stop")
    # No scheduler: mark it stopped as the scheduler would, then delete it.
    from service.store import crud

    with client.app.state.sessionmaker() as s:
        crud.mark_finished(s, study["id"], "stopped", "stopped by user")
    assert client.delete(f"/api/v1/studies/{study['id']}").status_code == 204
    assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 404
