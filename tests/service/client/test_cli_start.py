"""The CLI starts without the server: importing it, ``tuneforge --help`` and every client
command's help load no server module, no web framework, database, Optuna, Ray or PyTorch, no
HTTP client, no YAML parser and no rich.

How long it takes is measured by hand (the figure is in the redesign's closing note); what
decides it is what gets imported, which is checked here.
"""

import subprocess
import sys

import pytest

HEAVY = (
    "service.api",
    "service.store",
    "service.scheduling",
    "service.reports",
    "service.app",
    "search",
    "models",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "optuna",
    "ray",
    "torch",
    "numpy",
    "rich",
    "httpx",
    "yaml",
)

PROBE = """
import sys
from service.cli import main
sys.argv = ["tuneforge", *{args!r}]
try:
    main()
except SystemExit:
    pass
heavy = {heavy!r}
print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(heavy)))
"""


IMPORT_ONLY = """
import sys
import service.cli
heavy = {heavy!r}
print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(heavy)))
"""


def probe(code: str) -> tuple[str, str]:
    """What ``code`` printed in a fresh interpreter, and the heavy modules it loaded."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    printed, loaded = out.stdout.rsplit("LOADED", 1)
    return printed, loaded.strip()


def test_importing_the_cli_loads_nothing_heavy() -> None:
    assert probe(IMPORT_ONLY.format(heavy=HEAVY)) == ("", "[]")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["submit", "--help"],
        ["watch", "--help"],
        ["trials", "--help"],
        ["keys", "--help"],
        ["serve", "--help"],
    ],
)
def test_help_loads_no_server_module(args: list[str]) -> None:
    printed, loaded = probe(PROBE.format(args=args, heavy=HEAVY))
    assert "Usage: tuneforge" in printed
    assert loaded == "[]", f"tuneforge {' '.join(args)} imported: {loaded}"
