"""Shared by the API tests on an in-process app (see ``_inprocess``): a client with the admin
key, and ``examples/digits-mlp.yaml`` as the spec the validation cases start from."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.service.api._inprocess import _client
from tests.service.api._validation import EXAMPLE, Spec


@pytest.fixture(scope="module")
def base_spec() -> Spec:
    spec = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(spec, dict)
    return spec


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    """One app (and its data directory) for a module's refused requests: none of them may
    write anything, so they can share it."""
    data_dir = tmp_path_factory.mktemp("shared-app")
    yield from ((client, data_dir) for client in _client(data_dir))
