"""Every code block of the README and of ``docs/`` runs (issue 16): a snippet that fails fails
the suite. See :mod:`tests.docs.snippets` for how blocks are found and what checks each kind.

- Specs are posted to an in-process app (real SQLite and validation, no scheduler): 201.
- Shell and Python snippets run page by page, in order, against a live server of their own
  (``tuneforge serve`` joined to the session's Ray) from a folder that holds ``examples/``,
  ``.venv`` and the server's ``.tuneforge/`` data directory, as a user's clone after ``make
  run`` does. The
  server listens on a free port: ``127.0.0.1:8000`` in a snippet is rewritten to it, and
  ``TUNEFORGE_URL`` points the CLI at it. ``curl`` fails on an HTTP error (``--fail-with-body``)
  so a refused request fails its snippet; variables a page's earlier blocks set
  (``KEY=...``) are set again for its later blocks, as in one terminal. A page marked
  ``<!-- snippets: after-quickstart -->`` starts where the quickstart ends: study 1 (the
  quickstart's study) has finished and ``KEY`` holds the admin key's header.
"""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from benchmarks import harness
from tests.conftest import TEST_SERVER_ENV, wait_for
from tests.docs.snippets import ROOT, Snippet, all_snippets, pages, snippets
from tests.service.api._inprocess import _client

SNIPPETS = all_snippets()
BASE_SPEC = yaml.safe_load((ROOT / "examples" / "digits-mlp.yaml").read_text())
_ASSIGNMENT = re.compile(r"^(export\s+)?[A-Za-z_][A-Za-z0-9_]*=")
AFTER_QUICKSTART = "<!-- snippets: after-quickstart -->"
QUICKSTART_KEY = 'KEY="Authorization: Bearer $(cat .tuneforge/admin.key)"'
_PRELUDE = """set -euo pipefail
curl() { command curl --fail-with-body --silent --show-error "$@"; }
"""


def _ids(items: list[Snippet]) -> list[str]:
    return [s.where for s in items]


def test_every_block_is_a_snippet_of_a_known_kind() -> None:
    counts = Counter(s.kind for s in SNIPPETS)
    readme = sum(s.page == "README.md" for s in SNIPPETS)
    print(
        f"\nsnippets: {len(SNIPPETS)} (README {readme}, docs {len(SNIPPETS) - readme}): "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    )
    assert len(SNIPPETS) >= 40 and counts["spec"] >= 10 and counts["shell"] >= 10
    for s in SNIPPETS:
        if s.kind == "no-run":
            assert s.note, f"{s.where}: a no-run snippet says why"


def spec_of(snippet: Snippet) -> dict[str, Any]:
    """The study a spec snippet stands for: itself, or a fragment on the quickstart's study."""
    doc = json.loads(snippet.text) if snippet.lang == "json" else yaml.safe_load(snippet.text)
    assert isinstance(doc, dict), f"{snippet.where}: a spec is a mapping"
    return doc if "name" in doc else {**BASE_SPEC, **doc}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # Every spec snippet of the docs stays pending in it (no scheduler): more than the default
    # quota of active studies a tenant may have.
    yield from _client(tmp_path_factory.mktemp("snippets-app"), quota_active_studies=1000)


@pytest.mark.parametrize(
    "snippet",
    [s for s in SNIPPETS if s.kind == "spec"],
    ids=_ids([s for s in SNIPPETS if s.kind == "spec"]),
)
def test_spec_snippets_are_accepted(app: TestClient, snippet: Snippet) -> None:
    answer = app.post("/api/v1/studies", json=spec_of(snippet))
    assert answer.status_code == 201, f"{snippet.where}:\n{snippet.text}\n{answer.text}"


@pytest.mark.parametrize(
    "snippet",
    [s for s in SNIPPETS if s.kind == "output" and s.lang == "json"],
    ids=_ids([s for s in SNIPPETS if s.kind == "output" and s.lang == "json"]),
)
def test_json_outputs_parse(snippet: Snippet) -> None:
    json.loads(snippet.text)


LIVE_PAGES = [p for p in pages() if any(s.kind in ("shell", "python") for s in snippets(p))]


@pytest.mark.slow
@pytest.mark.parametrize("page", LIVE_PAGES, ids=[p.name for p in LIVE_PAGES])
def test_live_snippets_run(page: Path, tmp_path: Path, ray_cluster: str) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    data_dir = tmp_path / ".tuneforge"
    server = harness.start_server(
        f"sqlite:///{data_dir / 'tuneforge.db'}",
        data_dir,
        env={**TEST_SERVER_ENV, "TUNEFORGE_RAY_ADDRESS": ray_cluster},
        cwd=tmp_path,
    )
    address = server.url.removeprefix("http://")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TUNEFORGE_") and key != "VIRTUAL_ENV"
    }
    env.update(
        TUNEFORGE_URL=server.url,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    assignments: list[str] = []
    ran = 0
    try:
        if AFTER_QUICKSTART in page.read_text():
            study = server.api.post("/studies", json=BASE_SPEC).raise_for_status().json()
            assert study["id"] == 1
            wait_for(server.api, 1, lambda s: s["status"] not in ("pending", "running"))
            assignments.append(QUICKSTART_KEY)
        for snippet in snippets(page):
            if snippet.kind not in ("shell", "python"):
                continue
            text = snippet.text.replace("127.0.0.1:8000", address)
            if snippet.kind == "shell":
                command = [
                    "bash",
                    "-c",
                    _PRELUDE + "\n".join(assignments) + "\n" + text,
                ]
                assignments += [line for line in text.splitlines() if _ASSIGNMENT.match(line)]
            else:
                script = tmp_path / f"snippet-{snippet.line}.py"
                script.write_text(text)
                command = [sys.executable, str(script)]
            done = subprocess.run(
                command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, (
                f"{snippet.where} exited {done.returncode}:\n{snippet.text}\n"
                f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
            )
            ran += 1
    finally:
        server.stop()
    print(f"\n{page.name}: {ran} snippets ran")
    assert ran
