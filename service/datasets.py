"""Uploaded datasets: parse and check a client's ``.npz`` or ``.csv``, store it, load it back.

A client file is data, never code: an ``.npz`` is opened as a zip, every array's ``.npy`` header
is checked (numeric dtype, a size its bytes can hold) before NumPy reads it, and NumPy reads it
with ``allow_pickle=False``; a ``.csv`` is parsed with the ``csv`` module. A checked upload is
stored as ``<data_dir>/datasets/<id>.npz`` (``x`` float32; ``y`` int64 class indices or float32
targets), again without pickle, and :func:`load_upload` reads it back for a study.

Errors a client can fix raise :class:`~service.errors.SpecInvalid` located at the form field to
change: ``file`` (the content), ``task`` (a task given that the labels cannot have), ``target``
or ``name``.
"""

import csv
import hashlib
import io
import os
import re
import uuid
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from models.data import Kind, Task, kind_of
from service.errors import SpecInvalid

EXTENSIONS = (".npz", ".csv")
MIN_SAMPLES = 10
MAX_CLASSES = 1000
MAX_FEATURES = 100_000  # values per sample
# Inferred classification: integer labels with at most this many distinct values.
MAX_INFERRED_CLASSES = 100
# Bound on the arrays an .npz may unpack to: a small compressed file can expand enormously.
MAX_ARRAY_BYTES = 1 << 30
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_ID = re.compile(r"^[0-9a-f]{12}$")
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float
_CSV_TARGETS = ("target", "label")
_MAX_FILENAME = 255

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Upload:
    """A checked upload, ready to store.

    Shapes: ``x`` (N, *input_shape) float32; ``y`` (N,) int64 class indices for classification,
    (N,) or (N, n_outputs) float32 for regression. ``size_bytes`` and ``sha256`` describe the
    file as the client sent it.
    """

    filename: str
    x: np.ndarray
    y: np.ndarray
    task: Task
    kind: Kind
    input_shape: tuple[int, ...]
    n_outputs: int
    n_samples: int
    size_bytes: int
    sha256: str


def _invalid(field: str, msg: str) -> SpecInvalid:
    return SpecInvalid([((field,), msg)])


def new_dataset_id() -> str:
    """A fresh dataset id: 12 hex characters from a random UUID."""
    return uuid.uuid4().hex[:12]


def dataset_name(filename: str, name: str | None = None) -> str:
    """The dataset's name: ``name`` if given, else the file's stem.

    Raises:
        SpecInvalid: at ``name``, when the name (or the stem standing in for it) does not match
            the pattern of study names.
    """
    if name is not None:
        if not NAME_PATTERN.match(name):
            raise _invalid("name", f"name {name!r} must match {NAME_PATTERN.pattern}")
        return name
    stem = PurePosixPath(_basename(filename)).stem
    if not NAME_PATTERN.match(stem):
        raise _invalid(
            "name",
            f"the file name's stem {stem!r} is not a valid dataset name "
            f"({NAME_PATTERN.pattern}); pass a name",
        )
    return stem


def _basename(filename: str) -> str:
    # Some clients send a full (even Windows) path; only the last part names the file.
    return PurePosixPath(filename.replace("\\", "/")).name


def parse_upload(
    filename: str, content: bytes, task: Task | None = None, target: str | None = None
) -> Upload:
    """Parse and check an uploaded ``.npz`` (arrays ``x`` and ``y``) or ``.csv`` (with a header).

    Args:
        filename: the client's file name; its extension picks the format.
        content: the file's bytes.
        task: the learning task; inferred from ``y`` when ``None`` (integer labels with at most
            100 distinct values: classification, binary with exactly two; else regression).
        target: the CSV column holding the label; default ``target`` or ``label`` if the header
            has one, else the last column. Only for CSV files.

    Returns:
        The checked arrays, cast for storage, and their metadata.

    Raises:
        SpecInvalid: the file, task, or target is unusable; the message says why.
    """
    base = _basename(filename)
    suffix = PurePosixPath(base).suffix.lower()
    if suffix not in EXTENSIONS:
        raise _invalid(
            "file", f"unsupported file type {suffix or base!r}; upload a .npz (x, y) or a .csv"
        )
    if len(base) > _MAX_FILENAME:
        raise _invalid("file", f"the file name is longer than {_MAX_FILENAME} characters")
    if suffix == ".npz":
        if target is not None:
            raise _invalid("target", "target names a CSV column; an .npz has arrays x and y")
        x, y = _read_npz(content)
    else:
        x, y = _read_csv(content, target)
    checked = check_arrays(x, y, task)
    return Upload(
        filename=base,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        **checked,
    )


def _read_npz(content: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise _invalid("file", "not a valid .npz file (a zip archive of .npy arrays)") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        if sorted(members) != ["x.npy", "y.npy"]:
            found = ", ".join(sorted(m.removesuffix(".npy") for m in members)) or "nothing"
            raise _invalid("file", f"an .npz must hold exactly the arrays x and y; found: {found}")
        if sum(info.file_size for info in members.values()) > MAX_ARRAY_BYTES:
            raise _invalid("file", f"the arrays unpack to more than {MAX_ARRAY_BYTES} bytes")
        for member, info in members.items():
            _check_npy_header(archive, info, member.removesuffix(".npy"))
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as npz:
            return np.asarray(npz["x"]), np.asarray(npz["y"])
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise _invalid("file", f"could not read the .npz: {exc}") from None


def _check_npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> None:
    """Check an array's dtype and shape from its header alone, before any data is read."""
    fmt = np.lib.format
    try:
        with archive.open(info) as fp:
            version = fmt.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(fp)
            else:  # 3.0 exists only for structured dtypes with non-Latin-1 field names
                raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise _invalid("file", f"array {key} is not a valid .npy array: {exc}") from None
    if dtype.hasobject:
        raise _invalid(
            "file",
            f"array {key} holds Python objects (dtype {dtype}); only numeric arrays are accepted",
        )
    if dtype.kind not in _NUMERIC_KINDS:
        raise _invalid("file", f"{key} must be numeric (int, float or bool), got dtype {dtype}")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > info.file_size:
        raise _invalid("file", f"array {key}'s header declares shape {shape}, more than its data")


def _read_csv(content: bytes, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid("file", f"a .csv must be UTF-8 text: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        # (line number, cells), blank lines skipped
        rows = [(reader.line_num, row) for row in reader if row]
    except csv.Error as exc:
        raise _invalid("file", f"malformed .csv at line {reader.line_num}: {exc}") from None
    if not rows:
        raise _invalid("file", "the .csv is empty; it needs a header row and data rows")
    header = [cell.strip() for cell in rows[0][1]]
    if len(header) < 2:
        raise _invalid("file", "a .csv needs at least two columns: features and the target")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise _invalid("file", f"duplicate column names in the header: {', '.join(duplicates)}")
    if target is not None and target not in header:
        raise _invalid(
            "target", f"no column {target!r} in the header; columns: {', '.join(header)}"
        )
    if target is None:
        target = next((c for c in _CSV_TARGETS if c in header), header[-1])
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise _invalid(
                "file", f"line {line} has {len(row)} cells; the header has {len(header)}"
            )
    cells = [row for _, row in rows[1:]]
    try:
        values = np.array(cells, dtype=np.float64).reshape(len(cells), len(header))
    except ValueError:
        raise _not_a_number(rows[1:], header) from None
    column = header.index(target)
    return np.delete(values, column, axis=1), values[:, column]


def _not_a_number(rows: list[tuple[int, list[str]]], header: list[str]) -> SpecInvalid:
    for line, row in rows:
        for name, cell in zip(header, row, strict=True):
            try:
                float(cell)
            except ValueError:
                return _invalid("file", f"line {line}, column {name!r}: {cell!r} is not a number")
    return _invalid("file", "every cell of a .csv must be a number")  # pragma: no cover


def check_arrays(x: np.ndarray, y: np.ndarray, task: Task | None = None) -> dict[str, Any]:
    """Check features and labels, infer the task if not given, and cast them for storage.

    Returns:
        The keyword arguments of :class:`Upload` that describe the arrays: ``x``, ``y``,
        ``task``, ``kind``, ``input_shape``, ``n_outputs``, ``n_samples``.

    Raises:
        SpecInvalid: at ``file`` for arrays no task can use; at ``task`` for a given task the
            labels cannot have.
    """
    for key, a in (("x", x), ("y", y)):
        if a.dtype.kind not in _NUMERIC_KINDS:
            raise _invalid("file", f"{key} must be numeric (int, float or bool), got {a.dtype}")
    if not 2 <= x.ndim <= 4:
        raise _invalid(
            "file",
            "x must have 2, 3 or 4 dimensions (samples, features), (samples, channels, length) "
            f"or (samples, channels, height, width); got shape {x.shape}",
        )
    if not 1 <= y.ndim <= 2:
        raise _invalid("file", f"y must have 1 dimension, or 2 for several targets; got {y.shape}")
    if len(x) != len(y):
        raise _invalid("file", f"x has {len(x)} samples but y has {len(y)}; they must match")
    if len(x) < MIN_SAMPLES:
        raise _invalid("file", f"a dataset needs at least {MIN_SAMPLES} samples, got {len(x)}")
    n_features = int(np.prod(x.shape[1:]))
    if not 1 <= n_features <= MAX_FEATURES:
        raise _invalid(
            "file", f"a sample must have 1 to {MAX_FEATURES} values, got {n_features} ({x.shape})"
        )
    if y.ndim == 2 and y.shape[1] < 1:
        raise _invalid("file", f"y has no targets: shape {y.shape}")
    _check_finite(x, "x")
    _check_finite(y, "y")
    x32 = _to_float32(x, "x")
    # A label problem is the task's when the client chose the task, else the file's.
    loc = "task" if task is not None else "file"
    task = task or _infer_task(y)
    if task == "regression":
        y_out = _to_float32(y, "y")
        n_outputs = 1 if y.ndim == 1 else int(y.shape[1])
    else:
        y_out = _check_labels(y, task, loc)
        n_outputs = int(y_out.max()) + 1
    return {
        "x": x32,
        "y": y_out,
        "task": task,
        "kind": kind_of(x32),
        "input_shape": tuple(int(d) for d in x32.shape[1:]),
        "n_outputs": n_outputs,
        "n_samples": len(x32),
    }


def _check_finite(a: np.ndarray, key: str) -> None:
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            sample = int(np.argwhere(bad)[0][0])
            raise _invalid(
                "file", f"{key} contains NaN or infinite values (the first at sample {sample})"
            )


def _to_float32(a: np.ndarray, key: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = a.astype(np.float32)
    if a.dtype.kind == "f" and not np.isfinite(out).all():
        sample = int(np.argwhere(~np.isfinite(out))[0][0])
        raise _invalid(
            "file",
            f"{key} has values beyond float32's range, ±{np.finfo(np.float32).max:.3g} "
            f"(the first at sample {sample})",
        )
    return out


def _integer_valued(y: np.ndarray) -> bool:
    return y.dtype.kind in "biu" or bool(np.all(y == np.round(y)))


def _infer_task(y: np.ndarray) -> Task:
    if y.ndim == 1 and _integer_valued(y):
        n_distinct = len(np.unique(y))
        if n_distinct <= MAX_INFERRED_CLASSES:
            return "binary" if n_distinct == 2 else "multiclass"
    return "regression"


def _check_labels(y: np.ndarray, task: Task, loc: str) -> np.ndarray:
    """Class indices 0..n-1, each class at least twice; ``loc`` takes task-level errors."""
    if y.ndim != 1:
        raise _invalid(
            loc, f"{task} needs y of shape (samples,) holding class indices; got {y.shape}"
        )
    if not _integer_valued(y):
        example = y[y != np.round(y)][0]
        raise _invalid(
            loc, f"{task} labels must be integers; y has {example:g} (use task=regression)"
        )
    if y.min() < 0:
        raise _invalid("file", f"class labels must be 0 or more; y has {y.min():g}")
    if y.max() >= MAX_CLASSES:
        raise _invalid(
            "file",
            f"at most {MAX_CLASSES} classes (labels 0..{MAX_CLASSES - 1}); y has {y.max():g}",
        )
    labels = y.astype(np.int64)
    counts = np.bincount(labels)
    if task == "binary" and len(counts) != 2:
        present = ", ".join(str(c) for c in np.flatnonzero(counts))
        raise _invalid(loc, f"binary labels must be 0 and 1; y has classes {present}")
    if len(counts) < 2:
        raise _invalid(
            "file", f"classification needs at least 2 classes; y has only class {labels[0]}"
        )
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        raise _invalid(
            "file",
            f"class labels must be 0..{len(counts) - 1} with every class present; "
            f"class {missing[0]} has no sample",
        )
    rare = np.flatnonzero(counts < 2)
    if len(rare):
        raise _invalid(
            "file",
            f"every class needs at least 2 samples (the validation split is stratified); "
            f"class {rare[0]} has {counts[rare[0]]}",
        )
    return labels


def upload_path(data_dir: Path, dataset_id: str) -> Path:
    """Where an upload's arrays live.

    Raises:
        ValueError: ``dataset_id`` is not 12 lowercase hex characters (a path stays inside).
    """
    if not _ID.match(dataset_id):
        raise ValueError(f"invalid dataset id {dataset_id!r}: expected 12 hex characters")
    return data_dir / "datasets" / f"{dataset_id}.npz"


def save_upload(data_dir: Path, dataset_id: str, upload: Upload) -> Path:
    """Write the arrays to :func:`upload_path` (whole or not at all); returns the path."""
    path = upload_path(data_dir, dataset_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as f:
            np.savez(f, x=upload.x, y=upload.y)
        os.replace(partial, path)  # atomic: a reader sees no file or the whole file
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def load_upload(data_dir: Path, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
    """An uploaded dataset's arrays ``(x, y)``, as stored by :func:`save_upload`.

    Shapes: ``x`` (N, *input_shape) float32; ``y`` (N,) int64 for classification, (N,) or
    (N, n_outputs) float32 for regression. Pass them to :func:`models.data.from_arrays` with
    the dataset's task.

    Raises:
        ValueError: ``dataset_id`` is malformed.
        FileNotFoundError: no upload has that id.
    """
    with np.load(upload_path(data_dir, dataset_id), allow_pickle=False) as npz:
        return np.asarray(npz["x"]), np.asarray(npz["y"])


def remove_upload(data_dir: Path, dataset_id: str) -> None:
    """Delete an upload's file (no error if it is already gone)."""
    upload_path(data_dir, dataset_id).unlink(missing_ok=True)


def upload_id_of(spec: Mapping[str, Any]) -> str | None:
    """The upload a study spec (as stored in ``tf_studies.spec``) trains on, if any."""
    task = spec.get("task")
    dataset = task.get("dataset") if isinstance(task, Mapping) else None
    upload_id = dataset.get("upload_id") if isinstance(dataset, Mapping) else None
    return upload_id if isinstance(upload_id, str) else None
