"""API keys and tenants, over every route of the API (read off the app, so a new route is
covered the day it is added): no key or a revoked one → 401, a tenant key on admin routes →
403, another tenant's study, trial or dataset → 404, as if it did not exist."""

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "digits-mlp.yaml"
REPORT = ("GET", "/api/v1/studies/{study_id}/report")


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth")


@pytest.fixture(scope="module")
def client(app_dir: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=app_dir, run_scheduler=False))
    with TestClient(app) as c:
        yield c


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.fixture(scope="module")
def admin(app_dir: Path, client: TestClient) -> str:
    key = read_admin_key(app_dir)
    assert key and key.startswith("tf_")
    return key


def new_key(client: TestClient, admin: str, tenant: str, is_admin: bool = False) -> str:
    resp = client.post(
        "/api/v1/keys", json={"tenant": tenant, "admin": is_admin}, headers=auth(admin)
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


@pytest.fixture(scope="module")
def alice(client: TestClient, admin: str) -> str:
    return new_key(client, admin, "alice")


@pytest.fixture(scope="module")
def bob(client: TestClient, admin: str) -> str:
    return new_key(client, admin, "bob")


@pytest.fixture(scope="module")
def alices(client: TestClient, alice: str) -> dict[str, Any]:
    """A study and a dataset of alice's."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    study = client.post("/api/v1/studies", json=spec, headers=auth(alice))
    assert study.status_code == 201, study.text
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x=rng.normal(size=(40, 3)), y=rng.integers(0, 2, 40))
    files = {"file": ("tiny.npz", buf.getvalue())}
    dataset = client.post("/api/v1/datasets", files=files, headers=auth(alice))
    assert dataset.status_code == 201, dataset.text
    return {"study_id": study.json()["id"], "dataset_id": dataset.json()["id"]}


def api_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) of the API, from the app's own OpenAPI document."""
    paths = client.get("/openapi.json").json()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/v1")
        for method in operations
    )


def fill(path: str, ids: dict[str, Any]) -> str:
    values = {**ids, "number": 0, "kind": "weights", "key_id": 1, "tenant": "alice", "job_id": 1}
    return path.format(**values)


def test_the_first_start_writes_an_admin_key_readable_by_its_owner_only(
    app_dir: Path, admin: str
) -> None:
    mode = stat.S_IMODE(os.stat(app_dir / "admin.key").st_mode)
    assert mode == 0o600
    # A restart keeps it: no second admin key while one is active.
    with TestClient(create_app(Settings(data_dir=app_dir, run_scheduler=False))) as again:
        assert read_admin_key(app_dir) == admin
        keys = again.get("/api/v1/keys", headers=auth(admin)).json()
        assert sum(k["admin"] and not k["revoked_at"] for k in keys) == 1


def test_every_route_needs_a_key(client: TestClient, alices: dict[str, Any]) -> None:
    routes = api_routes(client)
    assert len(routes) >= 15
    assert REPORT in routes  # an HTML route is guarded like the JSON ones
    for method, path in routes:
        for headers in ({}, auth("tf_not-a-key"), {"X-API-Key": "nope"}):
            resp = client.request(method, fill(path, alices), headers=headers)
            assert resp.status_code == 401, (method, path, headers, resp.text)
            assert resp.headers["www-authenticate"] == "Bearer"
    assert client.get("/healthz").status_code == 200  # the health check stays open


def test_another_tenants_things_do_not_exist_for_it(
    client: TestClient, alices: dict[str, Any], bob: str
) -> None:
    checked = []
    for method, path in api_routes(client):
        if "{study_id}" not in path and "{dataset_id}" not in path:
            continue
        if path.startswith("/api/v1/keys"):
            continue
        body = {"parallelism": 2} if method == "PATCH" else None  # a valid change
        resp = client.request(method, fill(path, alices), json=body, headers=auth(bob))
        assert resp.status_code == 404, (method, path, resp.text)
        assert "not found" in resp.json()["detail"]
        checked.append((method, path))
    assert len(checked) >= 10
    assert REPORT in checked
    studies = client.get("/api/v1/studies", headers=auth(bob)).json()
    datasets = client.get("/api/v1/datasets", headers=auth(bob)).json()
    assert studies["total"] == 0 and datasets["total"] == 0


def test_a_tenant_uses_only_its_own_dataset_and_studies(
    client: TestClient, alice: str, alices: dict[str, Any], bob: str
) -> None:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["task"]["dataset"] = {"upload_id": alices["dataset_id"]}
    resp = client.post("/api/v1/studies", json=spec, headers=auth(bob))
    assert resp.status_code == 422
    assert "no uploaded dataset" in resp.json()["detail"][0]["msg"]
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["warm_start"] = {"from_study": alices["study_id"]}
    resp = client.post("/api/v1/studies", json=spec, headers=auth(bob))
    assert resp.status_code == 422
    assert f"study {alices['study_id']} not found" in resp.json()["detail"][0]["msg"]
    # Alice sees hers, and its report (HTML: the 404s above are not the route's only answer).
    mine = client.get(f"/api/v1/studies/{alices['study_id']}", headers=auth(alice))
    assert mine.status_code == 200
    report = client.get(fill(REPORT[1], alices), headers=auth(alice))
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert mine.json()["optuna_study_name"] in report.text


def test_admin_routes_refuse_tenant_keys(client: TestClient, alice: str) -> None:
    admin_routes = [(m, p) for m, p in api_routes(client) if p.startswith("/api/v1/keys")]
    assert len(admin_routes) == 3
    for method, path in admin_routes:
        body = {"tenant": "mallory", "admin": True} if method == "POST" else None
        resp = client.request(method, fill(path, {}), json=body, headers=auth(alice))
        assert resp.status_code == 403, (method, path, resp.text)


def test_a_revoked_key_is_refused_at_once(client: TestClient, admin: str) -> None:
    key = new_key(client, admin, "carol")
    assert client.get("/api/v1/studies", headers=auth(key)).status_code == 200
    listed = client.get("/api/v1/keys", headers=auth(admin)).json()
    key_id = next(k["id"] for k in listed if k["tenant"] == "carol")
    assert all("key" not in k and k["prefix"] != key for k in listed)  # never shown again
    revoked = client.delete(f"/api/v1/keys/{key_id}", headers=auth(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get("/api/v1/studies", headers=auth(key)).status_code == 401


def test_a_key_request_of_the_wrong_type_is_422(client: TestClient, admin: str) -> None:
    # 0 was read as false and a key created (found by fuzzing): the document says boolean.
    resp = client.post("/api/v1/keys", json={"tenant": "dave", "admin": 0}, headers=auth(admin))

    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["path"] == "admin"
    listed = client.get("/api/v1/keys", headers=auth(admin)).json()
    assert "dave" not in [k["tenant"] for k in listed]


def test_key_times_are_utc_with_their_zone(client: TestClient, admin: str) -> None:
    new_key(client, admin, "erin")
    for key in client.get("/api/v1/keys", headers=auth(admin)).json():  # read back from SQLite
        assert key["created_at"].endswith("Z"), key
        assert key["revoked_at"] is None or key["revoked_at"].endswith("Z"), key


def test_auth_off_is_explicit(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path, run_scheduler=False, auth=False))) as c:
        assert c.get("/api/v1/studies").status_code == 200
    assert not (tmp_path / "admin.key").exists()


def test_every_route_documents_the_errors_it_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "404", "413", "422"} <= codes, (method, path, codes)
            if path.startswith("/api/v1/keys"):
                assert "403" in codes, (method, path)
            if method == "delete" and "{key_id}" not in path:
                assert "409" in codes, (method, path)
