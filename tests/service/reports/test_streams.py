"""Event streams cannot stall the API (issue 15): a key holds at most
``TUNEFORGE_MAX_STREAMS_PER_KEY`` streams (one more is a 429 with the limit and the usage), a
closed stream gives its slot back, and revoking a key closes its open streams. Against a real
server over a real socket."""

import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Server
from tests.service.reports.test_events import spec

pytestmark = pytest.mark.slow

LIMIT = 3


class Stream:
    """One event stream read in a thread, on a plain socket, until the server closes it or
    :meth:`close` hangs up."""

    def __init__(self, server: Server, key: str, study_id: int) -> None:
        self.first = threading.Event()
        self.closed = threading.Event()
        self.status = 0
        host, port = server.url.removeprefix("http://").split(":")
        self._sock = socket.create_connection((host, int(port)), timeout=30)
        self._sock.sendall(
            f"GET /api/v1/studies/{study_id}/events HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        threading.Thread(target=self._read, daemon=True).start()
        assert self.first.wait(30), "the stream sent nothing"

    def _read(self) -> None:
        received = b""
        try:
            while chunk := self._sock.recv(65536):
                received += chunk
                if not self.status and b"\r\n" in received:
                    self.status = int(received.split(b" ", 2)[1])
                if b"event:" in received:
                    self.first.set()
        except OSError:
            pass  # hung up by close()
        finally:
            self.first.set()
            self.closed.set()

    def close(self) -> None:
        """Hang up (the reading thread sees its socket end)."""
        self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


def test_streams_per_key_are_capped_released_and_closed_by_revocation(
    server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    server = server_factory(
        sqlite_url,
        env={"TUNEFORGE_RUN_SCHEDULER": "false", "TUNEFORGE_MAX_STREAMS_PER_KEY": str(LIMIT)},
    )
    made = server.api.post("/keys", json={"tenant": "team"}).raise_for_status().json()
    key, key_id = made["key"], made["id"]
    colleague = server.api.post("/keys", json={"tenant": "team"}).json()["key"]
    with server.client(key) as api:
        study_id = api.post("/studies", json=spec()).raise_for_status().json()["id"]
        streams = [Stream(server, key, study_id) for _ in range(LIMIT)]
        assert all(s.status == 200 and not s.closed.is_set() for s in streams)

        over = api.get(f"/studies/{study_id}/events")
        assert over.status_code == 429
        body = over.json()
        assert (body["quota"], body["limit"], body["usage"]) == ("event streams per API key", 3, 3)
        assert "close one of this key's streams" in body["detail"]
        assert over.headers["Retry-After"]
        # Other keys are not held back; the API's other requests still answer.
        other = Stream(server, colleague, study_id)
        assert other.status == 200
        assert api.get("/studies").status_code == 200

        # A closed stream gives its slot back (once the server sees it gone).
        streams[0].close()
        assert streams[0].closed.wait(10)
        deadline = time.monotonic() + 10
        while opens(api, study_id) == 429:
            assert time.monotonic() < deadline, "the closed stream's slot never came back"
            time.sleep(0.2)

    # Revoking the key closes its open streams at their next look; the colleague's stays.
    server.api.delete(f"/keys/{key_id}").raise_for_status()
    assert all(s.closed.wait(10) for s in streams[1:])
    time.sleep(1)
    assert not other.closed.is_set()
    other.close()


def opens(api: httpx.Client, study_id: int) -> int:
    """The status a new stream opens with (the stream is closed again at once)."""
    with api.stream("GET", f"/studies/{study_id}/events") as resp:
        return resp.status_code
