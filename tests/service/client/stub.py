"""A stand-in HTTP server for the CLI's fast tests: it answers fixed JSON where a tuneforge
server would answer, so a command runs end to end (HTTP included) without a server or Ray."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from service.cli import app


@dataclass
class Stub:
    """Answers ``answers["GET /studies/3"]`` (status, JSON, or a text sent as an event
    stream); records every request as (method, path, Authorization header, JSON body)."""

    url: str
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    seen: list[tuple[str, str, str | None, Any]] = field(default_factory=list)


@contextmanager
def serve_stub() -> Iterator[Stub]:
    """A stub listening on a free loopback port until the block ends."""
    state = Stub(url="")

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            path = self.path.split("?")[0].removeprefix("/api/v1")
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.seen.append((self.command, path, self.headers.get("Authorization"), body))
            default = (404, {"detail": f"no answer for {self.command} {path}"})
            status, reply = state.answers.get(f"{self.command} {path}", default)
            stream = isinstance(reply, str)  # server-sent events, as written
            data = (reply if stream else json.dumps(reply)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_POST = answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def run(stub: Stub, data_dir: Path | None, *args: str, key: str | None = None) -> Result:
    """``tuneforge ARGS`` against the stub, with the key found in ``data_dir`` (or ``key``)."""
    env = {
        "TUNEFORGE_URL": stub.url,
        "TUNEFORGE_DATA_DIR": None if data_dir is None else str(data_dir),
        "TUNEFORGE_API_KEY": key,
    }
    return CliRunner().invoke(app, list(args), env=env, prog_name="tuneforge")
