"""Uploads a hostile tenant would send, each refused by a bound checked before the data is read
or cast (issue 15's findings), and uploads stored compressed.

Every case talks to an in-process app (real SQLite, real migrations, no scheduler) and checks
the 422 names the form field ``file``, says the bound, and that nothing was written.
"""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.errors import SpecInvalid
from service.store.uploads import (
    MAX_CSV_CELLS,
    MAX_CSV_COLUMNS,
    MAX_STORED_BYTES,
    parse_upload,
)
from tests.service.api._datasets import (
    assert_nothing_written,
    detail_items,
    iris,
    npz,
    stored_files,
    upload,
)
from tests.service.api._inprocess import _client


def refusal(client: TestClient, data_dir: Path, filename: str, content: bytes) -> str:
    """The message of the 422 at ``file`` for this upload; checks nothing was written."""
    detail = detail_items(upload(client, filename, content))
    assert [item["path"] for item in detail] == ["file"], detail
    assert_nothing_written(client, data_dir)
    return str(detail[0]["msg"])


def test_a_header_wider_than_the_column_cap_is_refused_before_any_row(
    shared: tuple[TestClient, Path],
) -> None:
    # The finding: a 1M-column header (8 MB, under the upload limit) would have held a thread
    # for hours in a quadratic duplicate check.
    header = ",".join(f"c{i}" for i in range(1_000_000)).encode() + b"\n"
    msg = refusal(*shared, "wide.csv", header)
    assert f"at most {MAX_CSV_COLUMNS} columns" in msg
    assert "the header has 1000000" in msg


def test_duplicate_columns_are_found_in_linear_time() -> None:
    # MAX_CSV_COLUMNS names, all the same: a check that counts each name in the whole header
    # (the finding: 27 s for 40,000 columns) would do 10**10 comparisons here and run into
    # the suite's timeout; a linear one answers at once.
    header = ",".join(["x"] * MAX_CSV_COLUMNS).encode() + b"\n"
    with pytest.raises(SpecInvalid) as refused:
        parse_upload("dup.csv", header)
    assert refused.value.errors == [(("file",), "duplicate column names in the header: x")]


def test_a_csv_past_the_cell_cap_is_refused_while_it_is_read(
    shared: tuple[TestClient, Path],
) -> None:
    rows = MAX_CSV_CELLS // 20 + 1  # twenty cells a row
    header = (",".join(f"c{i}" for i in range(19)) + ",target\n").encode()
    content = header + (b"0," * 19 + b"1\n") * rows
    msg = refusal(*shared, "long.csv", content)
    assert f"at most {MAX_CSV_CELLS} cells" in msg
    assert f"line {rows + 1} goes past it" in msg
    assert ".npz" in msg


def test_a_small_npz_that_would_be_stored_huge_is_refused_from_its_headers(
    shared: tuple[TestClient, Path],
) -> None:
    # The finding: 0.2 MB compressed, an all-zero bool array of 2000 x 100000 became an 800 MB
    # stored file (the cap applied before the float32 cast).
    buf = io.BytesIO()
    np.savez_compressed(
        buf, x=np.zeros((2000, 100_000), dtype=bool), y=np.zeros(2000, dtype=np.int64)
    )
    content = buf.getvalue()
    assert len(content) < 1_000_000
    msg = refusal(*shared, "zeros.npz", content)
    assert f"stored as {4 * 2000 * 100_000 + 8 * 2000} bytes" in msg
    assert f"at most {MAX_STORED_BYTES} bytes" in msg


def test_uploads_are_stored_compressed(tmp_path: Path) -> None:
    for client in _client(tmp_path):
        x, y = iris()
        response = upload(client, "iris.npz", npz(x=x, y=y))
        assert response.status_code == 201, response.text
        (path,) = stored_files(tmp_path)
        with zipfile.ZipFile(path) as archive:
            assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        with np.load(path, allow_pickle=False) as stored:
            np.testing.assert_allclose(stored["x"], x.astype(np.float32))
