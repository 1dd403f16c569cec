"""The reference documentation builds with MkDocs (Material) with no warning (``--strict``:
every nav entry, link and anchor resolves), and the built site loads nothing from another
host (no web font, script or style sheet), so it is readable offline."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.docs.snippets import ROOT

_ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["']?(https?:)?//""", re.I)


def test_the_site_builds_with_no_warning_and_no_outside_asset(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [Path(sys.executable).parent / "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 12
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert not _ASSET.search(html), f"{page.relative_to(site)} loads from another host"
