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
