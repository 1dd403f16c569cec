"""The example plugin (``examples/plugin``) made importable for a test: its package and a
``.dist-info`` that declares its entry points (what ``pip install`` writes), in a folder put
first on ``sys.path``; the registries' caches cleared before and after."""

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import models.data
import models.families
import search.functions

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugin"
PACKAGE = "tuneforge_example_plugin"


def clear_caches() -> None:
    for cached in (
        models.families._plugins,
        models.families._families,
        models.data._plugins,
        models.data._sources,
        models.data._info,
        search.functions._plugins,
        search.functions.all_functions,
    ):
        cached.cache_clear()


def install(folder: Path, extra_entries: str = "") -> Path:
    """Write the plugin's package and dist-info into ``folder`` (with ``extra_entries`` added
    to its entry_points.txt)."""
    shutil.copytree(PLUGIN / PACKAGE, folder / PACKAGE)
    info = folder / "tuneforge_example_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tuneforge-example-plugin\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[tuneforge.families]\ngated_mlp = tuneforge_example_plugin:GATED_MLP\n"
        "[tuneforge.datasets]\nspirals = tuneforge_example_plugin:SPIRALS\n"
        "[tuneforge.functions]\nstyblinski_tang = tuneforge_example_plugin:STYBLINSKI_TANG\n"
        + extra_entries
    )
    return folder


def on_path(folder: Path) -> Iterator[Path]:
    """``folder`` first on ``sys.path`` (and the registries reread) until the generator ends."""
    sys.path.insert(0, str(folder))
    clear_caches()
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(PACKAGE, None)
        clear_caches()
