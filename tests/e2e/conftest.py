"""Shared by the end-to-end tests that need only *a* server: the session's shared server (see
``tests/conftest.py``) as ``server``; each test works on studies of its own."""

import pytest

from tests.conftest import Server


@pytest.fixture(scope="module")
def server(shared_server: Server) -> Server:
    return shared_server
