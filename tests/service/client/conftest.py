"""The CLI's fast tests run commands against a stand-in server (:mod:`.stub`)."""

from collections.abc import Iterator

import pytest

from tests.service.client.stub import Stub, serve_stub


@pytest.fixture
def stub() -> Iterator[Stub]:
    """A stand-in tuneforge server: set its answers, run a command, read what it was sent."""
    with serve_stub() as server:
        yield server
