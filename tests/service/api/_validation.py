"""Shared by the ``test_validation_*`` modules: the study routes, the checks that a 422 names
its field and that nothing was written."""

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import optuna
from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "digits-mlp.yaml"
STUDIES = "/api/v1/studies"

Spec = dict[str, Any]


def _optuna_names(tmp_path: Path) -> list[str]:
    # A connection of its own to the file: sees what the app committed, not a session's cache.
    with contextlib.closing(sqlite3.connect(tmp_path / "tuneforge.db")) as conn:
        return [name for (name,) in conn.execute("SELECT study_name FROM studies")]


def _assert_nothing_written(client: TestClient, tmp_path: Path) -> None:
    page = client.get(STUDIES)
    assert page.status_code == 200
    assert page.json()["total"] == 0
    assert page.json()["items"] == []
    assert optuna.get_all_study_names(storage=client.app.state.storage) == []
    assert _optuna_names(tmp_path) == []


def _detail_items(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    for item in detail:
        assert set(item) >= {"loc", "path", "msg"}
        assert isinstance(item["loc"], list)
        assert isinstance(item["path"], str)
        assert isinstance(item["msg"], str)
        assert item["msg"]
    return detail
