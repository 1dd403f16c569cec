"""Dataset uploads: ``.npz`` and ``.csv`` in, checked arrays stored, listed, loaded, deleted.

Every case talks to an in-process app (real SQLite, real migrations, no scheduler). A rejected
upload gets a 422 that names the form field to fix (``file``, ``task``, ``target``, ``name``),
and leaves neither a ``tf_datasets`` row nor a file under ``<data_dir>/datasets``.
"""

import csv
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sqlalchemy.orm import Session

from models.data import from_arrays
from search.datadir import DataDir
from service.api.limits import BodyLimit
from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings
from service.store.orm import DatasetRow, StudyRow
from service.store.uploads import load_upload, parse_upload, save_upload

DATASETS = "/api/v1/datasets"

Files = dict[str, tuple[str, bytes]]


def _client(data_dir: Path, **settings: Any) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=data_dir, run_scheduler=False, **settings))
    with TestClient(app) as client:
        key = read_admin_key(data_dir)  # written on the app's first start
        if key:
            client.headers["Authorization"] = f"Bearer {key}"
        yield client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """One app for the rejected uploads: none of them may write anything."""
    data_dir = tmp_path_factory.mktemp("rejected")
    for client in _client(data_dir):
        yield client, data_dir


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


# -- rejected uploads --------------------------------------------------------------------------


def _object_array_npz() -> bytes:
    x = np.empty((20, 2), dtype=object)
    x[:] = 1.0
    return npz(x=x, y=np.arange(20) % 2)


def test_npz_with_an_object_array_is_rejected_without_unpickling(
    shared: tuple[TestClient, Path],
) -> None:
    client, data_dir = shared

    (item,) = detail_items(upload(client, "evil.npz", _object_array_npz()))

    assert item["path"] == "file"
    assert item["loc"] == ["body", "file"]
    assert "object" in item["msg"]
    assert_nothing_written(client, data_dir)


def test_object_array_is_refused_by_parse_upload_too() -> None:
    from service.errors import SpecInvalid

    with pytest.raises(SpecInvalid, match="object"):
        parse_upload("evil.npz", _object_array_npz())


def _zip(**members: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return buf.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _lying_header() -> bytes:
    """An x.npy that declares 10**10 float64s but holds a few bytes: must not be allocated."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 10)}
    )
    return _zip(x=buf.getvalue() + b"\0" * 64, y=_npy(np.arange(10) % 2))


X, Y = load_iris(return_X_y=True)
IRIS_CSV = csv_bytes(["a", "b", "c", "d", "target"], np.column_stack([X, Y]))


def _nan_x() -> bytes:
    x = X.copy()
    x[7, 2] = np.nan
    return npz(x=x, y=Y)


def _inf_y() -> bytes:
    y = Y.astype(np.float64) + 0.5
    y[3] = np.inf
    return npz(x=X, y=y)


def _with_label(label: int, index: int = 0) -> np.ndarray:
    y = Y.copy()
    y[index] = label
    return y


def _csv_with(line: int, column: int, value: str) -> bytes:
    lines = IRIS_CSV.decode().splitlines()
    cells = lines[line - 1].split(",")
    cells[column] = value
    lines[line - 1] = ",".join(cells)
    return "\n".join(lines).encode()


def _ragged_csv() -> bytes:
    lines = IRIS_CSV.decode().splitlines()
    lines[3] = "1,2,3"
    return "\n".join(lines).encode()


# (id, filename, content, form fields, expected path, substrings of the message)
Case = tuple[str, str, bytes, dict[str, str], str, tuple[str, ...]]
CASES: list[Case] = [
    ("extension", "iris.txt", IRIS_CSV, {}, "file", ("'.txt'", ".npz", ".csv")),
    ("no-extension", "iris", IRIS_CSV, {}, "file", ("'iris'", ".npz", ".csv")),
    ("pickle-file", "iris.npz", b"\x80\x04K\x01.", {}, "file", ("not a valid .npz",)),
    ("npz-missing-y", "x.npz", npz(x=X), {}, "file", ("exactly the arrays x and y", "found: x")),
    (
        "npz-extra-array",
        "xyz.npz",
        npz(x=X, y=Y, z=Y),
        {},
        "file",
        ("exactly the arrays x and y", "x, y, z"),
    ),
    ("npz-wrong-names", "ab.npz", npz(a=X, b=Y), {}, "file", ("found: a, b",)),
    ("npz-lying-header", "big.npz", _lying_header(), {}, "file", ("header declares",)),
    ("x-strings", "s.npz", npz(x=X.astype(str), y=Y), {}, "file", ("x must be numeric", "<U")),
    ("x-complex", "c.npz", npz(x=X.astype(complex), y=Y), {}, "file", ("x must be numeric",)),
    ("y-strings", "s.npz", npz(x=X, y=Y.astype(str)), {}, "file", ("y must be numeric",)),
    ("x-1d", "a.npz", npz(x=X[:, 0], y=Y), {}, "file", ("2, 3 or 4 dimensions", "(150,)")),
    ("x-5d", "a.npz", npz(x=X.reshape(150, 1, 1, 2, 2), y=Y), {}, "file", ("2, 3 or 4",)),
    ("y-3d", "a.npz", npz(x=X, y=Y.reshape(150, 1, 1)), {}, "file", ("y must have 1",)),
    (
        "length-mismatch",
        "a.npz",
        npz(x=X, y=Y[:-1]),
        {},
        "file",
        ("150 samples", "149"),
    ),
    (
        "too-few-samples",
        "a.npz",
        npz(x=X[:9], y=np.arange(9) % 2),
        {},
        "file",
        ("at least 10 samples", "got 9"),
    ),
    (
        "too-many-features",
        "wide.npz",
        npz(x=np.zeros((10, 1, 317, 317), np.int8), y=np.arange(10) % 2),
        {},
        "file",
        ("100000", "100489"),
    ),
    ("nan-in-x", "a.npz", _nan_x(), {}, "file", ("x contains NaN", "sample 7")),
    ("inf-in-y", "a.npz", _inf_y(), {}, "file", ("y contains NaN", "sample 3")),
    (
        "x-beyond-float32",
        "a.npz",
        npz(x=np.where(X > 7, 1e300, X), y=Y),
        {},
        "file",
        ("x has values beyond float32's range", "3.4e+38"),
    ),
    ("negative-label", "a.npz", npz(x=X, y=_with_label(-1)), {}, "file", ("0 or more", "-1")),
    (
        "missing-class",
        "a.npz",
        npz(x=X, y=np.where(Y == 2, 3, Y)),
        {"task": "multiclass"},
        "file",
        ("every class present", "class 2 has no sample"),
    ),
    (
        "class-seen-once",
        "a.npz",
        npz(x=X, y=_with_label(3)),
        {},
        "file",
        ("at least 2 samples", "stratified", "class 3 has 1"),
    ),
    (
        "too-many-classes",
        "a.npz",
        npz(x=np.zeros((2002, 1)), y=np.arange(2002) // 2),
        {"task": "multiclass"},
        "file",
        ("at most 1000 classes",),
    ),
    ("one-class", "a.npz", npz(x=X, y=np.zeros(150)), {}, "file", ("at least 2 classes",)),
    (
        "inferred-binary-not-0-1",
        "a.npz",
        npz(x=X[Y > 0], y=Y[Y > 0]),
        {},
        "file",
        ("binary labels must be 0 and 1", "1, 2"),
    ),
    (
        "binary-with-three-classes",
        "a.npz",
        npz(x=X, y=Y),
        {"task": "binary"},
        "task",
        ("binary labels must be 0 and 1", "0, 1, 2"),
    ),
    (
        "classification-of-fractions",
        "a.npz",
        npz(x=X, y=Y + 0.5),
        {"task": "multiclass"},
        "task",
        ("integers", "0.5", "regression"),
    ),
    (
        "classification-of-2d-y",
        "a.npz",
        npz(x=X, y=np.column_stack([Y, Y])),
        {"task": "multiclass"},
        "task",
        ("(150, 2)",),
    ),
    ("unknown-task", "a.npz", npz(x=X, y=Y), {"task": "ranking"}, "task", ("multiclass",)),
    ("bad-name", "a.npz", npz(x=X, y=Y), {"name": "my data"}, "name", ("pattern",)),
    ("bad-stem", "my data.npz", npz(x=X, y=Y), {}, "name", ("'my data'", "pass a name")),
    ("target-on-npz", "a.npz", npz(x=X, y=Y), {"target": "y"}, "target", ("CSV column",)),
    (
        "csv-not-a-number",
        "a.csv",
        _csv_with(3, 1, "abc"),
        {},
        "file",
        ("line 3", "column 'b'", "'abc' is not a number"),
    ),
    (
        "csv-empty-cell",
        "a.csv",
        _csv_with(5, 4, ""),
        {},
        "file",
        ("line 5", "column 'target'", "'' is not a number"),
    ),
    ("csv-nan-cell", "a.csv", _csv_with(5, 0, "nan"), {}, "file", ("x contains NaN", "sample 3")),
    ("csv-ragged", "a.csv", _ragged_csv(), {}, "file", ("line 4 has 3 cells", "header has 5")),
    (
        "csv-unknown-target",
        "a.csv",
        IRIS_CSV,
        {"target": "species"},
        "target",
        ("'species'", "a, b, c, d, target"),
    ),
    ("csv-one-column", "a.csv", b"target\n" + b"1\n" * 20, {}, "file", ("two columns",)),
    ("csv-empty", "a.csv", b"", {}, "file", ("empty",)),
    ("csv-header-only", "a.csv", b"a,b,target\n", {}, "file", ("at least 10 samples", "got 0")),
    ("csv-not-utf8", "a.csv", b"a,b\n\xff\xfe,1\n", {}, "file", ("UTF-8",)),
    ("csv-duplicate-column", "a.csv", b"a,a,target\n", {}, "file", ("duplicate", "a")),
]


@pytest.mark.parametrize(
    ("filename", "content", "form", "path", "needles"),
    [pytest.param(f, c, d, p, n, id=i) for i, f, c, d, p, n in CASES],
)
def test_bad_upload_is_rejected_with_its_field_and_nothing_is_written(
    shared: tuple[TestClient, Path],
    filename: str,
    content: bytes,
    form: dict[str, str],
    path: str,
    needles: tuple[str, ...],
) -> None:
    client, data_dir = shared

    detail = detail_items(upload(client, filename, content, **form))

    matching = [item for item in detail if item["path"] == path]
    assert matching, f"no error at {path}; got {detail}"
    assert matching[0]["loc"] == ["body", path]
    msg = matching[0]["msg"]
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    assert_nothing_written(client, data_dir)


def test_missing_file_is_422_at_file(shared: tuple[TestClient, Path]) -> None:
    client, data_dir = shared

    detail = detail_items(client.post(DATASETS, data={"name": "nothing"}))

    assert [item["path"] for item in detail] == ["file"]
    assert_nothing_written(client, data_dir)


def test_json_body_is_422_at_file(shared: tuple[TestClient, Path]) -> None:
    client, data_dir = shared

    detail = detail_items(client.post(DATASETS, json={"x": [[1]], "y": [0]}))

    assert "file" in [item["path"] for item in detail]
    assert_nothing_written(client, data_dir)


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
