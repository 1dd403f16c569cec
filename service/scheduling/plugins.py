"""The catalog plugins a scheduler's Ray workers have, for the API's check of a submission.

A study that names a family, dataset or function an installed package adds
(:mod:`models.plugins`) can only run where every Ray node has that package. The scheduler asks
each live node with CPUs for its :func:`models.plugins.inventory` (a task pinned to the node,
no CPU taken), keeps what all of them have, and writes it with its heartbeat
(``tf_schedulers.plugins``); the API refuses a study naming a plugin that no live replica's
workers have (:func:`search.plugin_checks.plugin_errors`). Nodes join and leave: it looks
again every :data:`LOOK_EVERY_S`.
"""

import logging
import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from models.plugins import GROUPS, inventory

log = logging.getLogger(__name__)

LOOK_EVERY_S = 60.0


def workers_inventory(timeout_s: float) -> dict[str, dict[str, str]] | None:
    """What every live Ray node with CPUs has (entry → "package version", the same on all);
    None when no node answered within ``timeout_s``."""
    nodes = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    task = ray.remote(num_cpus=0)(inventory)
    refs = [
        task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote()
        for n in nodes
    ]
    ready, late = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    for ref in late:
        ray.cancel(ref, force=True)
    found: list[dict[str, dict[str, str]]] = [ray.get(r) for r in ready]
    if not found:
        return None
    return {
        g: {k: v for k, v in found[0][g].items() if all(f[g].get(k) == v for f in found[1:])}
        for g in GROUPS
    }


class WorkerPlugins:
    """The scheduler's latest look (None before one succeeded)."""

    def __init__(self) -> None:
        self.found: dict[str, Any] | None = None
        self._looked = -LOOK_EVERY_S

    def look(self, timeout_s: float = 2.0) -> None:
        """Look again if :data:`LOOK_EVERY_S` passed since the last look."""
        now = time.monotonic()
        if now - self._looked < LOOK_EVERY_S:
            return
        self._looked = now
        try:
            found = workers_inventory(timeout_s)
        except Exception:
            log.exception("cannot ask the Ray nodes for their plugins")
            return
        if found is not None:
            self.found = found
