"""An in-process app for the API tests: real SQLite, real migrations, no scheduler."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.app import create_app
from service.client.cli import read_admin_key
from service.config import Settings


def _client(data_dir: Path, **settings: Any) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=data_dir, run_scheduler=False, **settings))
    with TestClient(app) as client:
        key = read_admin_key(data_dir)  # written on the app's first start
        if key:
            client.headers["Authorization"] = f"Bearer {key}"
        yield client
