"""Catalog plugins: model families, datasets and functions that installed packages add.

An organisation ships its own models to its cluster as a Python package installed in the image
of every tuneforge process and Ray node, never as code sent over the API. The package declares
Python entry points in three groups (``examples/plugin/`` is a whole one)::

    [project.entry-points."tuneforge.families"]
    gated_mlp = "acme_models:GATED_MLP"     # a models.families.base.Family named gated_mlp
    [project.entry-points."tuneforge.datasets"]
    churn = "acme_models:CHURN"             # a models.data.DatasetSource
    [project.entry-points."tuneforge.functions"]
    cost = "acme_models:COST"               # a search.functions.SyntheticFunction named cost

The entry's name is what a study names. Its object declares its fields and checks exactly as a
built-in entry does, so a study using it is validated the same way. An entry whose name a
built-in (or an earlier plugin) already has, whose object is not of its group's type, or whose
module fails to import is left out, with the reason in the log.
"""

import importlib.metadata
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

GROUPS = ("families", "datasets", "functions")
T = TypeVar("T")


@dataclass(frozen=True)
class Plugin:
    """Where a catalog entry comes from: the installed distribution that declares it."""

    package: str
    version: str

    def __str__(self) -> str:
        return f"{self.package} {self.version}"


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=f"tuneforge.{group}"), key=lambda e: e.name)


def _origin(entry: importlib.metadata.EntryPoint) -> Plugin:
    dist = entry.dist
    return Plugin(dist.name, dist.version) if dist is not None else Plugin("unknown", "unknown")


def entries(group: str, kind: type[T], taken: Collection[str]) -> dict[str, tuple[T, Plugin]]:
    """The entries of ``group`` (one of :data:`GROUPS`) that installed packages declare, loaded
    and checked: name → (object, origin). ``taken``: the names built-in entries have."""
    found: dict[str, tuple[T, Plugin]] = {}
    for entry in _entry_points(group):
        origin = _origin(entry)
        where = f"plugin {group} entry {entry.name!r} of {origin}"
        if entry.name in taken or entry.name in found:
            log.warning("%s left out: the name is taken", where)
            continue
        try:
            obj = entry.load()
        except Exception:
            log.exception("%s left out: it does not load", where)
            continue
        if not isinstance(obj, kind):
            log.warning("%s left out: %r is no %s", where, obj, kind.__name__)
            continue
        name = getattr(obj, "name", entry.name)
        if name != entry.name:
            log.warning("%s left out: its object is named %r", where, name)
            continue
        found[entry.name] = (obj, origin)
    return found


def inventory() -> dict[str, dict[str, str]]:
    """What this process's environment declares, without loading anything: group → entry name
    → ``"package version"``. The scheduler records its Ray workers' (see
    :func:`search.trials.worker.warm_workers`) for the API's check of a submission."""
    return {g: {e.name: str(_origin(e)) for e in _entry_points(g)} for g in GROUPS}
