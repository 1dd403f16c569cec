"""Shared by the ``test_datasets_*`` modules: uploads written in memory (``.npz``, ``.csv``),
posted, and the checks that a 422 names its form field and that nothing was written."""

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris

DATASETS = "/api/v1/datasets"

Files = dict[str, tuple[str, bytes]]


def npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def csv_bytes(header: list[str], rows: Any) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def iris() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return x, y


def upload(client: TestClient, filename: str, content: bytes, **form: str) -> httpx.Response:
    return client.post(DATASETS, files={"file": (filename, content)}, data=form)


def stored_files(data_dir: Path) -> list[Path]:
    folder = data_dir / "datasets"
    return sorted(folder.iterdir()) if folder.exists() else []


def assert_nothing_written(client: TestClient, data_dir: Path) -> None:
    page = client.get(DATASETS)
    assert page.status_code == 200
    assert page.json()["total"] == 0
    assert page.json()["items"] == []
    assert stored_files(data_dir) == []


def detail_items(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    for item in detail:
        assert set(item) >= {"loc", "path", "msg", "type"}
        assert item["msg"]
    return detail
