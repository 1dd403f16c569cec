"""Bad requests get the status that says why, and nothing is written: a body that is no JSON
object or no UTF-8, a malformed upload, a wrong method, a body over the size limit, an unknown
study, a bad id, bad paging, numbers beyond what the database holds.

Every case talks to an in-process app (real SQLite, real migrations, no scheduler); where a
study could have been created, it checks that neither a ``tf_studies`` row nor an Optuna study
exists afterwards.
"""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.service.api._inprocess import _client
from tests.service.api._validation import STUDIES, Spec, _assert_nothing_written, _detail_items


def test_non_json_body_is_rejected(client: TestClient, tmp_path: Path) -> None:
    response = client.post(
        STUDIES, content=b"name: digits\n{", headers={"content-type": "application/json"}
    )

    detail = _detail_items(response)
    assert "JSON" in detail[0]["msg"]
    assert detail[0]["path"] == "body"  # not "[1]": the offset is no field
    _assert_nothing_written(client, tmp_path)


def test_body_that_is_not_utf8_is_422_not_400(client: TestClient, tmp_path: Path) -> None:
    # FastAPI answers such a body with an undocumented 400 "error parsing the body" (fuzzing).
    response = client.post(STUDIES, content=b"\xc3s", headers={"content-type": "application/json"})

    detail = _detail_items(response)
    assert detail[0]["path"] == "body"
    assert detail[0]["type"] == "json_invalid"
    assert "UTF-8" in detail[0]["msg"]
    _assert_nothing_written(client, tmp_path)


def test_malformed_multipart_upload_is_422_not_400(client: TestClient) -> None:
    response = client.post(
        "/api/v1/datasets", content=b"--x\r\nbad", headers={"content-type": "multipart/form-data"}
    )

    detail = _detail_items(response)
    assert detail[0]["path"] == "body"
    assert "boundary" in detail[0]["msg"]


def test_a_wrong_method_names_every_method_of_the_path(client: TestClient) -> None:
    # The router's 405 named only the first route's method ("Allow: GET") (fuzzing).
    response = client.request("OPTIONS", f"{STUDIES}/1")

    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert client.put(STUDIES).headers["allow"] == "GET, POST"


def test_json_that_is_not_an_object_is_rejected(client: TestClient, tmp_path: Path) -> None:
    detail = _detail_items(client.post(STUDIES, json=["digits-mlp"]))

    assert detail[0]["loc"][0] == "body"
    _assert_nothing_written(client, tmp_path)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", f"{STUDIES}/999"),
        ("GET", f"{STUDIES}/999/trials"),
        ("GET", f"{STUDIES}/999/trials/0"),
        ("GET", f"{STUDIES}/999/best"),
        ("POST", f"{STUDIES}/999/stop"),
        ("DELETE", f"{STUDIES}/999"),
    ],
)
def test_unknown_study_is_404(client: TestClient, method: str, url: str) -> None:
    response = client.request(method, url)

    assert response.status_code == 404
    assert "999" in response.json()["detail"]


def test_patch_of_unknown_study_is_404(client: TestClient) -> None:
    response = client.patch(f"{STUDIES}/999", json={"parallelism": 2})

    assert response.status_code == 404


def test_non_integer_study_id_is_422(client: TestClient) -> None:
    detail = _detail_items(client.get(f"{STUDIES}/abc"))

    assert detail[0]["loc"] == ["path", "study_id"]


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=501", "limit"), ("offset=-1", "offset")],
)
def test_bad_paging_is_422(client: TestClient, query: str, param: str) -> None:
    detail = _detail_items(client.get(f"{STUDIES}?{query}"))

    assert detail[0]["loc"] == ["query", param]


def test_body_over_the_size_limit_is_413(tmp_path: Path, base_spec: Spec) -> None:
    body = json.dumps(base_spec).encode()
    for client in _client(tmp_path, max_request_bytes=len(body) - 1):
        response = client.post(STUDIES, content=body, headers={"content-type": "application/json"})

        assert response.status_code == 413
        assert str(len(body) - 1) in response.json()["detail"]
        _assert_nothing_written(client, tmp_path)


def test_chunked_body_over_the_size_limit_is_413(tmp_path: Path, base_spec: Spec) -> None:
    body = json.dumps(base_spec).encode()
    for client in _client(tmp_path, max_request_bytes=100):
        # A generator body is sent chunked, without a content-length header.
        response = client.post(
            STUDIES,
            content=iter([body[:50], body[50:]]),
            headers={"content-type": "application/json"},
        )

        assert response.status_code == 413
        _assert_nothing_written(client, tmp_path)


def test_body_at_the_size_limit_is_accepted(tmp_path: Path, base_spec: Spec) -> None:
    body = json.dumps(base_spec).encode()
    for client in _client(tmp_path, max_request_bytes=len(body)):
        response = client.post(STUDIES, content=body, headers={"content-type": "application/json"})

        assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/studies/99999999999999999999999",
        "/api/v1/studies/2147483648/trials",
        "/api/v1/studies/99999999999999999999/trials/99999999999999999999",
        "/api/v1/studies?offset=99999999999999999999",
        "/api/v1/datasets?offset=2147483648",
    ],
)
def test_numbers_beyond_the_database_are_422_not_500(client: TestClient, url: str) -> None:
    resp = client.get(url)
    assert resp.status_code == 422, resp.text
    assert "less than or equal to 2147483647" in resp.json()["detail"][0]["msg"]
