"""Rejected dataset uploads: a 422 that names the form field to fix (``file``, ``task``,
``target``, ``name``), and neither a ``tf_datasets`` row nor a file under
``<data_dir>/datasets`` left behind.

The cases share one in-process app (real SQLite, real migrations, no scheduler): none of them
may write anything.
"""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris

from service.store.uploads import parse_upload
from tests.service.api._datasets import (
    DATASETS,
    assert_nothing_written,
    csv_bytes,
    detail_items,
    npz,
    upload,
)


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
