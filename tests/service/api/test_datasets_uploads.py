"""Dataset uploads accepted: ``.npz`` and ``.csv`` in, checked arrays stored as float32 and
int64 (or float32 targets), the task, kind and shapes inferred or given; and the upload size
limit, apart from the limit of other bodies.

Every case talks to an in-process app (real SQLite, real migrations, no scheduler).
"""

import hashlib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer, load_diabetes

from search.datadir import DataDir
from service.api.limits import BodyLimit
from service.store.uploads import load_upload
from tests.service.api._datasets import (
    DATASETS,
    assert_nothing_written,
    csv_bytes,
    iris,
    npz,
    stored_files,
    upload,
)
from tests.service.api._inprocess import _client

# -- accepted uploads ------------------------------------------------------------------------


def test_iris_npz_is_stored_as_float32_and_int64(client: TestClient, tmp_path: Path) -> None:
    x, y = iris()
    content = npz(x=x, y=y)

    response = upload(client, "iris.npz", content)

    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["id"]) == 12
    int(body["id"], 16)
    assert body["name"] == "iris"
    assert body["filename"] == "iris.npz"
    assert (body["task"], body["kind"]) == ("multiclass", "tabular")
    assert body["input_shape"] == [4]
    assert (body["n_outputs"], body["n_samples"]) == (3, 150)
    assert body["size_bytes"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert body["created_at"].endswith("Z") or "+00:00" in body["created_at"]
    path = tmp_path / "datasets" / f"{body['id']}.npz"
    assert stored_files(tmp_path) == [path]
    with np.load(path, allow_pickle=False) as stored:
        assert sorted(stored.files) == ["x", "y"]
        assert stored["x"].dtype == np.float32
        assert stored["y"].dtype == np.int64
        np.testing.assert_allclose(stored["x"], x.astype(np.float32))
        np.testing.assert_array_equal(stored["y"], y)


def test_breast_cancer_csv_finds_the_target_column_by_name(client: TestClient) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    # The label first: found by its name, not by its position.
    content = csv_bytes(["target"] + [f"f{i}" for i in range(30)], np.column_stack([y, x]))

    body = upload(client, "cancer.csv", content).json()

    assert (body["task"], body["kind"], body["input_shape"]) == ("binary", "tabular", [30])
    assert (body["n_outputs"], body["n_samples"]) == (2, 569)


def test_diabetes_csv_takes_the_last_column_as_a_regression_target(
    client: TestClient, tmp_path: Path
) -> None:
    x, y = load_diabetes(return_X_y=True)
    content = csv_bytes([f"f{i}" for i in range(10)] + ["progression"], np.column_stack([x, y]))

    body = upload(client, "diabetes.csv", content).json()

    assert (body["task"], body["input_shape"], body["n_outputs"]) == ("regression", [10], 1)
    x_back, y_back = load_upload(DataDir(tmp_path), body["id"])
    assert (x_back.dtype, y_back.dtype) == (np.float32, np.float32)
    np.testing.assert_allclose(y_back, y, rtol=1e-6)
    np.testing.assert_allclose(x_back, x, rtol=1e-5, atol=1e-7)


def test_csv_target_form_field_picks_the_label_column(client: TestClient, tmp_path: Path) -> None:
    x, y = iris()
    header = ["sepal_length", "species", "sepal_width", "petal_length", "petal_width"]
    rows = np.column_stack([x[:, :1], y, x[:, 1:]])

    body = upload(client, "flowers.csv", csv_bytes(header, rows), target="species").json()

    assert (body["task"], body["input_shape"], body["n_outputs"]) == ("multiclass", [4], 3)
    x_back, y_back = load_upload(DataDir(tmp_path), body["id"])
    np.testing.assert_allclose(x_back, x.astype(np.float32))
    np.testing.assert_array_equal(y_back, y)


def test_image_npz_is_an_image_dataset(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)

    body = upload(client, "pictures.npz", npz(x=x, y=y)).json()

    assert (body["task"], body["kind"]) == ("multiclass", "image")
    assert (body["input_shape"], body["n_outputs"], body["n_samples"]) == ([3, 8, 8], 4, 40)


def test_sequence_npz_with_multi_target_regression(client: TestClient) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 2, 16))
    y = rng.normal(size=(30, 3))

    body = upload(client, "waves.npz", npz(x=x, y=y)).json()

    assert (body["task"], body["kind"]) == ("regression", "sequence")
    assert (body["input_shape"], body["n_outputs"]) == ([2, 16], 3)


def test_explicit_task_and_name_win_over_inference(client: TestClient) -> None:
    x, y = iris()

    body = upload(client, "iris.npz", npz(x=x, y=y), task="regression", name="iris-reg").json()

    assert (body["name"], body["task"], body["n_outputs"]) == ("iris-reg", "regression", 1)


def test_upload_above_the_json_body_limit_is_accepted(tmp_path: Path) -> None:
    """Uploads have their own limit: the 1 kB limit of other bodies does not apply."""
    x, y = iris()
    content = npz(x=x, y=y)
    assert len(content) > 1000
    for client in _client(tmp_path, max_request_bytes=1000):
        assert upload(client, "iris.npz", content).status_code == 201
        assert client.post("/api/v1/studies", content=b"{" + b" " * 1000 + b"}").status_code == 413


# -- sizes -------------------------------------------------------------------------------------


def test_upload_over_the_size_limit_is_413(tmp_path: Path) -> None:
    x, y = iris()
    for client in _client(tmp_path, max_upload_bytes=2000):
        response = upload(client, "iris.npz", npz(x=x, y=y))

        assert response.status_code == 413
        assert "2000" in response.json()["detail"]
        assert_nothing_written(client, tmp_path)


def test_chunked_upload_over_the_size_limit_is_413(tmp_path: Path) -> None:
    x, y = iris()
    request = httpx.Request("POST", "http://t/", files={"file": ("iris.npz", npz(x=x, y=y))})
    body = request.read()
    for client in _client(tmp_path, max_upload_bytes=2000):
        # A generator body is sent chunked, without a content-length header.
        chunks = iter([body[i : i + 1000] for i in range(0, len(body), 1000)])
        response = client.post(
            DATASETS, content=chunks, headers={"content-type": request.headers["content-type"]}
        )

        assert response.status_code == 413
        assert_nothing_written(client, tmp_path)


def test_chunked_upload_under_the_limit_is_accepted(tmp_path: Path) -> None:
    x, y = iris()
    request = httpx.Request("POST", "http://t/", files={"file": ("iris.npz", npz(x=x, y=y))})
    body = request.read()
    for client in _client(tmp_path, max_upload_bytes=len(body)):
        chunks = iter([body[i : i + 1000] for i in range(0, len(body), 1000)])
        response = client.post(
            DATASETS, content=chunks, headers={"content-type": request.headers["content-type"]}
        )

        assert response.status_code == 201, response.text


def test_body_limit_overrides_match_whole_path_segments() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        pass

    limits = BodyLimit(app, 10, overrides={"/api/v1/datasets": 100, "/api/v1/datasets/big/": 1000})

    assert limits.limit_for("/api/v1/datasets") == 100
    assert limits.limit_for("/api/v1/datasets/abc") == 100
    assert limits.limit_for("/api/v1/datasets/big") == 1000
    assert limits.limit_for("/api/v1/datasetsx") == 10
    assert limits.limit_for("/api/v1/studies") == 10
