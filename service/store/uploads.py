"""Uploaded datasets: parse and check a client's ``.npz`` or ``.csv``, store it, load it back.

A client file is data, never code: an ``.npz`` is opened as a zip, every array's ``.npy`` header
is checked (numeric dtype, a size its bytes can hold) before NumPy reads it, and NumPy reads it
with ``allow_pickle=False``; a ``.csv`` is parsed with the ``csv`` module. A checked upload is
stored compressed as ``<data_dir>/datasets/<id>.npz`` (``x`` float32; ``y`` int64 class indices
or float32 targets), again without pickle, and :func:`load_upload` reads it back for a study.
Every check is bounded before the data is read or cast: an ``.npz``'s headers give its arrays'
sizes; a ``.csv``'s header gives its columns (:data:`MAX_CSV_COLUMNS`) and its rows are counted
in cells as they are read (:data:`MAX_CSV_CELLS`, which keeps a CSV far below
:data:`MAX_STORED_BYTES`, the bound on an ``.npz`` as stored).

Errors a client can fix raise :class:`~service.errors.SpecInvalid` located at the form field to
change: ``file`` (the content), ``task`` (a task given that the labels cannot have), ``target``
or ``name``.
"""

import csv
import hashlib
import io
import math
import os
import re
import uuid
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from models.data import Kind, Task
from search.datadir import DataDir
from service.errors import SpecInvalid
from service.store.graph_upload import GRAPH_ARRAYS, padded_graphs
from service.store.upload_checks import MAX_FEATURES, NUMERIC_KINDS, check_arrays, invalid

EXTENSIONS = (".npz", ".csv")
# Bound on the arrays an .npz may unpack to: a small compressed file can expand enormously.
MAX_ARRAY_BYTES = 1 << 30
# Bound on the arrays as stored (x float32, y int64 or float32), checked from an .npz's headers
# or a CSV's shape before any cast: a bool array grows fourfold as float32.
MAX_STORED_BYTES = 1 << 28
# A CSV's columns (features and the target), checked on the header before any row is read, and
# its cells, counted as rows are read (a parsed cell is a Python string: about 60 bytes).
MAX_CSV_COLUMNS = MAX_FEATURES + 1
MAX_CSV_CELLS = 1_000_000
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
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
            raise invalid("name", f"name {name!r} must match {NAME_PATTERN.pattern}")
        return name
    stem = PurePosixPath(_basename(filename)).stem
    if not NAME_PATTERN.match(stem):
        raise invalid(
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
        raise invalid(
            "file", f"unsupported file type {suffix or base!r}; upload a .npz (x, y) or a .csv"
        )
    if len(base) > _MAX_FILENAME:
        raise invalid("file", f"the file name is longer than {_MAX_FILENAME} characters")
    if suffix == ".npz":
        if target is not None:
            raise invalid("target", "target names a CSV column; an .npz has arrays x and y")
        x, y, kind = _read_npz(content)
    else:
        (x, y), kind = _read_csv(content, target), None
    checked = check_arrays(x, y, task)
    if kind is not None:  # padded graphs: rank 3, as sequences are
        checked["kind"] = kind
    return Upload(
        filename=base,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        **checked,
    )


def _read_npz(content: bytes) -> tuple[np.ndarray, np.ndarray, Kind | None]:
    """An .npz's ``x`` and ``y``, or its graphs (:mod:`service.store.graph_upload`) padded."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise invalid("file", "not a valid .npz file (a zip archive of .npy arrays)") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        names = sorted(m.removesuffix(".npy") for m in members)
        graphs = names == list(GRAPH_ARRAYS) and all(m.endswith(".npy") for m in members)
        if sorted(members) != ["x.npy", "y.npy"] and not graphs:
            found = ", ".join(names) or "nothing"
            raise invalid(
                "file",
                f"an .npz must hold exactly the arrays x and y (or, for graphs, x, edge_index, "
                f"graph_index and y); found: {found}",
            )
        if sum(info.file_size for info in members.values()) > MAX_ARRAY_BYTES:
            raise invalid("file", f"the arrays unpack to more than {MAX_ARRAY_BYTES} bytes")
        values = {
            m.removesuffix(".npy"): _check_npy_header(archive, i, m.removesuffix(".npy"))
            for m, i in members.items()
        }
        if not graphs:  # graphs are checked once their padded size is known
            _check_stored_size(values["x"], values["y"])
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in names}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise invalid("file", f"could not read the .npz: {exc}") from None
    if not graphs:
        return arrays["x"], arrays["y"], None
    y = arrays["y"]
    max_values = (MAX_STORED_BYTES - 8 * y.size) // 4  # x stored as float32
    x = padded_graphs(arrays["x"], arrays["edge_index"], arrays["graph_index"], y, max_values)
    return x, y, "graph"


def _check_stored_size(x_values: int, y_values: int) -> None:
    """Refuse arrays that would be stored larger than :data:`MAX_STORED_BYTES` (x as float32,
    y as at most 8 bytes a value), from their sizes alone: nothing is cast before this."""
    stored = 4 * x_values + 8 * y_values
    if stored > MAX_STORED_BYTES:
        raise invalid(
            "file",
            f"the arrays would be stored as {stored} bytes (x as float32, y as int64 or "
            f"float32); at most {MAX_STORED_BYTES} bytes are accepted",
        )


def _check_npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> int:
    """Check an array's dtype and shape from its header alone, before any data is read;
    returns its number of values."""
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
        raise invalid("file", f"array {key} is not a valid .npy array: {exc}") from None
    if dtype.hasobject:
        raise invalid(
            "file",
            f"array {key} holds Python objects (dtype {dtype}); only numeric arrays are accepted",
        )
    if dtype.kind not in NUMERIC_KINDS:
        raise invalid("file", f"{key} must be numeric (int, float or bool), got dtype {dtype}")
    values = math.prod(int(n) for n in shape)
    if values * dtype.itemsize > info.file_size:
        raise invalid("file", f"array {key}'s header declares shape {shape}, more than its data")
    return values


def _read_csv(content: bytes, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid("file", f"a .csv must be UTF-8 text: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip() for cell in next((row for row in reader if row), [])]
        if not header:
            raise invalid("file", "the .csv is empty; it needs a header row and data rows")
        # Every check of the header is linear in its length, and its length is capped before
        # any data row is read.
        if len(header) < 2:
            raise invalid("file", "a .csv needs at least two columns: features and the target")
        if len(header) > MAX_CSV_COLUMNS:
            raise invalid(
                "file",
                f"a .csv may have at most {MAX_CSV_COLUMNS} columns (features and the target); "
                f"the header has {len(header)}",
            )
        duplicates = sorted(name for name, n in Counter(header).items() if n > 1)
        if duplicates:
            shown = ", ".join(duplicates[:10]) + (", ..." if len(duplicates) > 10 else "")
            raise invalid("file", f"duplicate column names in the header: {shown}")
        # (line number, cells), blank lines skipped; the cells read so far are capped, so the
        # parse holds at most MAX_CSV_CELLS strings whatever the file.
        rows: list[tuple[int, list[str]]] = [(0, header)]
        n_cells = 0
        for row in reader:
            if row:
                n_cells += len(row)
                if n_cells > MAX_CSV_CELLS:
                    raise invalid(
                        "file",
                        f"a .csv may hold at most {MAX_CSV_CELLS} cells (line {reader.line_num} "
                        "goes past it); upload a larger dataset as an .npz",
                    )
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise invalid("file", f"malformed .csv at line {reader.line_num}: {exc}") from None
    if target is not None and target not in header:
        shown = ", ".join(header[:20]) + (", ..." if len(header) > 20 else "")
        raise invalid("target", f"no column {target!r} in the header; columns: {shown}")
    if target is None:
        target = next((c for c in _CSV_TARGETS if c in header), header[-1])
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise invalid("file", f"line {line} has {len(row)} cells; the header has {len(header)}")
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
                return invalid("file", f"line {line}, column {name!r}: {cell!r} is not a number")
    return invalid("file", "every cell of a .csv must be a number")  # pragma: no cover


def save_upload(data_dir: DataDir, dataset_id: str, upload: Upload) -> Path:
    """Write the arrays to the upload's path (whole or not at all); returns the path."""
    path = data_dir.upload(dataset_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as f:
            np.savez_compressed(f, x=upload.x, y=upload.y)
        os.replace(partial, path)  # atomic: a reader sees no file or the whole file
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def load_upload(data_dir: DataDir, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
    """An uploaded dataset's arrays ``(x, y)``, as stored by :func:`save_upload`.

    Shapes: ``x`` (N, *input_shape) float32; ``y`` (N,) int64 for classification, (N,) or
    (N, n_outputs) float32 for regression. Pass them to :func:`models.data.from_arrays` with
    the dataset's task.

    Raises:
        ValueError: ``dataset_id`` is malformed.
        FileNotFoundError: no upload has that id.
    """
    with np.load(data_dir.upload(dataset_id), allow_pickle=False) as npz:
        return np.asarray(npz["x"]), np.asarray(npz["y"])


def remove_upload(data_dir: DataDir, dataset_id: str) -> None:
    """Delete an upload's file (no error if it is already gone)."""
    data_dir.upload(dataset_id).unlink(missing_ok=True)
