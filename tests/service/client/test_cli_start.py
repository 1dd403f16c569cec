"""The CLI starts without the server: ``tuneforge --help`` (and every client command's help)
loads no server module, no web framework, database, Optuna, Ray or PyTorch, and no rich.

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


@pytest.mark.parametrize("args", [["--help"], ["submit", "--help"], ["keys", "--help"]])
def test_help_loads_no_server_module(args: list[str]) -> None:
    code = PROBE.format(args=args, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Usage: tuneforge" in out.stdout
    loaded = out.stdout.rsplit("LOADED", 1)[1].strip()
    assert loaded == "[]", f"tuneforge {' '.join(args)} imported: {loaded}"
