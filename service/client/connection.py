"""How the CLI reaches the server: its URL, the API key and where it came from, and the
server's refusals said in the CLI's own words.

The key is ``TUNEFORGE_API_KEY``, or else the admin key the server wrote to
``<TUNEFORGE_DATA_DIR>/admin.key`` on its first start; a 401 names where it was looked for.
A 422 about a query or path parameter names the CLI's option or argument (``--state``, not
``query.state``). The HTTP client is imported when a command runs, not before.
"""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from service.client.api import ApiError, Client

DEFAULT_URL = "http://127.0.0.1:8000"
KEY_VARIABLE = "TUNEFORGE_API_KEY"
ADMIN_KEY_FILE = "admin.key"  # in the data directory (the server's DataDir.admin_key)


def data_dir() -> Path:
    """The data directory, as the server on this machine finds it (``TUNEFORGE_DATA_DIR``)."""
    return Path(os.environ.get("TUNEFORGE_DATA_DIR", ".tuneforge"))


def read_admin_key(folder: Path) -> str | None:
    """The key in ``folder/admin.key``, if the file exists."""
    try:
        return (folder / ADMIN_KEY_FILE).read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class ApiKey:
    """The key the CLI sends: ``value`` (None: none found), read from ``source`` (the
    variable's name or the file's absolute path); ``looked_in`` lists every place tried."""

    value: str | None
    source: str | None
    looked_in: tuple[str, ...]

    def refused(self, detail: object) -> str:
        """A 401's message: no key was found (and where it was looked for), or which key
        from where, with the server's reason."""
        if self.value is None:
            return (
                "the server refused the request: no API key given "
                f"(looked in {' and '.join(self.looked_in)})"
            )
        return f"the server refused the API key {self.value[:10]}… from {self.source}: {detail}"


def find_key() -> ApiKey:
    """The API key: ``TUNEFORGE_API_KEY``, else the data directory's ``admin.key``."""
    admin_file = str((data_dir() / ADMIN_KEY_FILE).absolute())
    looked_in = (KEY_VARIABLE, admin_file)
    if os.environ.get(KEY_VARIABLE):
        return ApiKey(os.environ[KEY_VARIABLE], KEY_VARIABLE, looked_in)
    key = read_admin_key(data_dir())
    return ApiKey(key, admin_file if key else None, looked_in)


def server_url() -> str:
    """The server's base URL (``TUNEFORGE_URL``)."""
    return os.environ.get("TUNEFORGE_URL", DEFAULT_URL)


def error_lines(exc: "ApiError", key: ApiKey, names: Mapping[str, str]) -> list[str]:
    """The CLI's message for a refusal: one line per invalid field, a 401 with where the key
    came from, else the status and the server's sentence.

    ``names`` maps a query or path parameter to the CLI's option or argument that sets it
    (``{"status": "--state"}``); a query parameter not named there is shown as ``--name``.
    """
    if exc.status == 401:
        return [f"error 401: {key.refused(exc.detail)}"]
    if not exc.fields:
        return [f"error {exc.status}: {exc.detail}"]
    lines = []
    for field in exc.fields:
        loc = [str(part) for part in field.get("loc", [])]
        where = str(field.get("path") or "(body)")
        if len(loc) == 2 and loc[0] in ("query", "path"):
            default = "--" + loc[1].replace("_", "-") if loc[0] == "query" else loc[1].upper()
            where = names.get(loc[1], default)
        lines.append(f"error: {where}: {field.get('msg')}")
    return lines


@contextmanager
def api(names: Mapping[str, str] | None = None) -> Iterator["Client"]:
    """The API client; its errors become a message on stderr and an exit status (1: refused,
    2: no server). ``names``: the command's options by API parameter (:func:`error_lines`)."""
    from service.client.api import ApiError, Client, Unreachable

    key = find_key()
    try:
        with Client(server_url(), key.value) as client:
            yield client
    except Unreachable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except ApiError as exc:
        for line in error_lines(exc, key, {"study_id": "ID", **(names or {})}):
            typer.echo(line, err=True)
        raise typer.Exit(1) from exc


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (``--json``): nothing else goes there."""
    typer.echo(json.dumps(data, indent=2, default=str))
