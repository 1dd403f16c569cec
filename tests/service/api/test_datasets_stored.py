"""Stored dataset uploads: listed, fetched and deleted (not while an active study uses one),
rows and files kept in step, and loaded for a study.

Every case talks to an in-process app (real SQLite, real migrations, no scheduler), or to the
upload store on a temporary data directory.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from models.data import from_arrays
from search.datadir import DataDir
from service.store.orm import DatasetRow, StudyRow
from service.store.uploads import load_upload, parse_upload, save_upload
from tests.service.api._datasets import (
    DATASETS,
    assert_nothing_written,
    detail_items,
    iris,
    npz,
    stored_files,
    upload,
)

# -- list, get, delete -------------------------------------------------------------------------


def test_list_get_and_delete(client: TestClient, tmp_path: Path) -> None:
    x, y = iris()
    ids = [upload(client, f"iris{i}.npz", npz(x=x, y=y)).json()["id"] for i in range(3)]

    page = client.get(DATASETS).json()
    assert page["total"] == 3
    assert {d["id"] for d in page["items"]} == set(ids)
    assert all(d["created_at"].endswith("Z") for d in page["items"])  # UTC, also from SQLite
    assert (page["offset"], page["limit"]) == (0, 50)
    second = client.get(f"{DATASETS}?offset=1&limit=1").json()
    assert second["total"] == 3
    assert [d["id"] for d in second["items"]] == [page["items"][1]["id"]]
    got = client.get(f"{DATASETS}/{ids[0]}")
    assert got.status_code == 200
    assert got.json()["name"] == "iris0"

    assert client.delete(f"{DATASETS}/{ids[0]}").status_code == 204

    assert client.get(f"{DATASETS}/{ids[0]}").status_code == 404
    assert client.delete(f"{DATASETS}/{ids[0]}").status_code == 404
    assert client.get(DATASETS).json()["total"] == 2
    assert not DataDir(tmp_path).upload(ids[0]).exists()
    assert len(stored_files(tmp_path)) == 2


@pytest.mark.parametrize("dataset_id", ["0123456789ab", "nope", "..", "%2E%2E%2Fetc"])
def test_unknown_dataset_is_404(client: TestClient, dataset_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = client.request(method, f"{DATASETS}/{dataset_id}")
        assert response.status_code == 404, (method, response.text)


@pytest.mark.parametrize(
    ("query", "param"), [("offset=-1", "offset"), ("limit=0", "limit"), ("limit=501", "limit")]
)
def test_bad_paging_is_422(client: TestClient, query: str, param: str) -> None:
    assert detail_items(client.get(f"{DATASETS}?{query}"))[0]["loc"] == ["query", param]


def _add_study(client: TestClient, dataset_id: str, status: str, name: str) -> int:
    maker: Callable[[], Session] = client.app.state.sessionmaker  # type: ignore[attr-defined]
    with maker() as session:
        row = StudyRow(
            name=name,
            optuna_study_name=f"{name}-0000",
            spec={"task": {"dataset": {"upload_id": dataset_id}}},
            status=status,
        )
        session.add(row)
        session.commit()
        return row.id


def _set_status(client: TestClient, study_id: int, status: str) -> None:
    maker: Callable[[], Session] = client.app.state.sessionmaker  # type: ignore[attr-defined]
    with maker() as session:
        row = session.get(StudyRow, study_id)
        assert row is not None
        row.status = status
        session.commit()


def test_delete_while_an_active_study_uses_it_is_409(client: TestClient, tmp_path: Path) -> None:
    x, y = iris()
    used = upload(client, "iris.npz", npz(x=x, y=y)).json()["id"]
    other = upload(client, "other.npz", npz(x=x, y=y)).json()["id"]
    pending = _add_study(client, used, "pending", "uses-it")
    _add_study(client, other, "completed", "done-with-other")

    response = client.delete(f"{DATASETS}/{used}")

    assert response.status_code == 409
    assert used in response.json()["detail"]
    assert str(pending) in response.json()["detail"]
    assert client.get(f"{DATASETS}/{used}").status_code == 200
    assert DataDir(tmp_path).upload(used).exists()
    _set_status(client, pending, "running")
    assert client.delete(f"{DATASETS}/{used}").status_code == 409
    # A finished study does not hold its dataset.
    assert client.delete(f"{DATASETS}/{other}").status_code == 204
    _set_status(client, pending, "stopped")
    assert client.delete(f"{DATASETS}/{used}").status_code == 204
    assert stored_files(tmp_path) == []


def test_a_failed_commit_leaves_no_file(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(_self: Session) -> None:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(Session, "commit", fail)
    x, y = iris()
    with pytest.raises(RuntimeError, match="database is gone"):
        upload(client, "iris.npz", npz(x=x, y=y))
    monkeypatch.undo()

    assert_nothing_written(client, tmp_path)


# -- loading for a study -----------------------------------------------------------------------


def test_load_upload_round_trips_into_from_arrays(tmp_path: Path) -> None:
    x, y = iris()
    parsed = parse_upload("iris.npz", npz(x=x, y=y))
    path = save_upload(DataDir(tmp_path), "abcdef012345", parsed)
    assert path == tmp_path / "datasets" / "abcdef012345.npz"

    x_back, y_back = load_upload(DataDir(tmp_path), "abcdef012345")

    assert (x_back.dtype, y_back.dtype) == (np.float32, np.int64)
    np.testing.assert_array_equal(x_back, parsed.x)
    np.testing.assert_array_equal(y_back, y)
    data = from_arrays("iris", x_back, y_back, parsed.task, 0.2, 0)
    assert data.info.input_shape == parsed.input_shape
    assert data.n_classes == parsed.n_outputs == 3
    assert len(data.x_train) + len(data.x_val) == 150


def test_load_upload_refuses_bad_ids_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid dataset id"):
        load_upload(DataDir(tmp_path), "../../etc/passwd")
    with pytest.raises(FileNotFoundError):
        load_upload(DataDir(tmp_path), "0123456789ab")


def test_rows_and_files_match_after_uploads(client: TestClient, tmp_path: Path) -> None:
    x, y = iris()
    ids = {upload(client, "iris.npz", npz(x=x, y=y)).json()["id"] for _ in range(2)}

    maker: Callable[[], Session] = client.app.state.sessionmaker  # type: ignore[attr-defined]
    with maker() as session:
        rows = session.query(DatasetRow).all()
    assert {r.id for r in rows} == ids
    assert {p.name for p in stored_files(tmp_path)} == {f"{i}.npz" for i in ids}


def test_a_study_posted_on_an_upload_holds_it(client: TestClient) -> None:
    x, y = iris()
    dataset_id = upload(client, "iris.npz", npz(x=x, y=y)).json()["id"]
    study = {
        "name": "on-upload",
        "task": {"dataset": {"upload_id": dataset_id}, "training": {"epochs": 1}},
        "budget": {"max_trials": 1},
    }
    created = client.post("/api/v1/studies", json=study)
    assert created.status_code == 201, created.text

    response = client.delete(f"{DATASETS}/{dataset_id}")

    assert response.status_code == 409
    assert f"({created.json()['id']})" in response.json()["detail"]


def test_upload_info_describes_the_upload_for_a_study(client: TestClient) -> None:
    from service.store import crud

    x = np.random.default_rng(2).normal(size=(20, 1, 4, 4))
    dataset_id = upload(client, "tiles.npz", npz(x=x, y=np.arange(20) % 2)).json()["id"]
    maker: Callable[[], Session] = client.app.state.sessionmaker  # type: ignore[attr-defined]

    with maker() as session:
        info = crud.upload_info(session, dataset_id)
        assert crud.upload_info(session, "0123456789ab") is None

    assert info is not None
    assert (info.name, info.task, info.kind) == ("tiles", "binary", "image")
    assert (info.input_shape, info.n_outputs, info.n_samples) == ((1, 4, 4), 2, 20)
