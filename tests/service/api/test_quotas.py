"""Per-tenant quotas (issue 15): over a limit the API answers 429 (waiting helps) or 403 (only
the caller or an admin can change it) with the limit, the usage and what to do; admins set a
tenant's limits; a tenant reads its own. On an in-process app (real SQLite, no scheduler)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.api._datasets import csv_bytes
from tests.service.api._inprocess import _client
from tests.service.api._validation import Spec

LIMITS = {"quota_active_studies": 2, "quota_trials_in_flight": 4, "quota_datasets": 2}


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, **LIMITS)


def tenant_client(admin: TestClient, tenant: str) -> TestClient:
    key = admin.post("/api/v1/keys", json={"tenant": tenant}).json()["key"]
    client = TestClient(admin.app)
    client.headers["Authorization"] = f"Bearer {key}"
    return client


def study(base_spec: Spec, parallelism: int = 1) -> dict[str, Any]:
    return {**base_spec, "parallelism": parallelism}


def over(response: Any, status: int, quota: str, limit: int, usage: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["quota"], body["limit"], body["usage"]) == (quota, limit, usage), body
    return str(body["detail"])


def test_active_studies_over_the_quota_answer_429_until_one_ends(
    admin: TestClient, base_spec: Spec
) -> None:
    team = tenant_client(admin, "team")
    ids = [team.post("/api/v1/studies", json=study(base_spec)).json()["id"] for _ in range(2)]
    third = team.post("/api/v1/studies", json=study(base_spec))
    detail = over(third, 429, "active studies per tenant", 2, 2)
    assert "stop one" in detail and third.headers["Retry-After"]
    assert len(team.get("/api/v1/studies").json()["items"]) == 2  # nothing half-written
    # Another tenant is not held back by this one's studies.
    other = tenant_client(admin, "other")
    assert other.post("/api/v1/studies", json=study(base_spec)).status_code == 201
    # An admin raises the quota: the next one goes through.
    assert admin.put("/api/v1/tenants/team/quota", json={"active_studies": 3}).status_code == 200
    assert team.post("/api/v1/studies", json=study(base_spec)).status_code == 201
    assert len(ids) == 2


def test_parallelism_above_the_trials_quota_is_refused_with_403(
    admin: TestClient, base_spec: Spec
) -> None:
    team = tenant_client(admin, "team")
    detail = over(
        team.post("/api/v1/studies", json=study(base_spec, parallelism=5)),
        403,
        "trials in flight per tenant",
        4,
        5,
    )
    assert "parallelism 5" in detail
    study_id = team.post("/api/v1/studies", json=study(base_spec, parallelism=4)).json()["id"]
    over(
        team.patch(f"/api/v1/studies/{study_id}", json={"parallelism": 64}),
        403,
        "trials in flight per tenant",
        4,
        64,
    )
    assert team.get(f"/api/v1/studies/{study_id}").json()["spec"]["parallelism"] == 4


def test_datasets_and_stored_bytes_over_the_quota_answer_403(admin: TestClient) -> None:
    team = tenant_client(admin, "team")
    data = csv_bytes(["a", "b", "target"], [[i, i * 2, i % 2] for i in range(40)])

    def upload(name: str) -> Any:
        return team.post(
            "/api/v1/datasets", files={"file": (f"{name}.csv", data)}, data={"name": name}
        )

    assert upload("one").status_code == 201
    assert upload("two").status_code == 201
    detail = over(upload("three"), 403, "datasets per tenant", 2, 2)
    assert "delete a dataset" in detail
    size = len(data)
    admin.put("/api/v1/tenants/team/quota", json={"datasets": 10, "stored_bytes": 3 * size - 1})
    over(upload("four"), 403, "stored bytes per tenant", 3 * size - 1, 2 * size)
    assert len(team.get("/api/v1/datasets").json()["items"]) == 2


def test_a_tenant_reads_its_quota_and_only_admins_set_one(
    admin: TestClient, base_spec: Spec
) -> None:
    team = tenant_client(admin, "team")
    team.post("/api/v1/studies", json=study(base_spec))
    mine = team.get("/api/v1/quota").json()
    assert mine["tenant"] == "team"
    assert mine["limits"] == {
        "active_studies": 2,
        "trials_in_flight": 4,
        "datasets": 2,
        "stored_bytes": 10 * 2**30,
        "weight": 1.0,
    }
    assert mine["usage"] == {
        "active_studies": 1,
        "trials_in_flight": 0,
        "datasets": 0,
        "stored_bytes": 0,
    }
    assert team.put("/api/v1/tenants/team/quota", json={"datasets": 99}).status_code == 403
    assert team.get("/api/v1/tenants/other/quota").status_code == 403
    changed = admin.put("/api/v1/tenants/team/quota", json={"datasets": 7, "weight": 2})
    assert changed.json()["limits"]["datasets"] == 7 and changed.json()["limits"]["weight"] == 2
    back = admin.put("/api/v1/tenants/team/quota", json={"datasets": None}).json()
    assert back["limits"]["datasets"] == 2 and back["limits"]["weight"] == 2  # others stay
    bad = admin.put("/api/v1/tenants/team/quota", json={"datasets": 0, "nope": 1})
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} >= {
        ("body", "datasets"),
        ("body", "nope"),
    }
