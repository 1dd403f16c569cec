"""Shared by the ``test_metrics_*`` modules: the API's /metrics body, and the exposition text
parsed with prometheus_client's own parser, as a scraper would."""

from dataclasses import dataclass
from typing import Any

import optuna
from prometheus_client.parser import text_string_to_metric_families

from service.reports.metrics import render as render_registry
from service.scheduling.metrics import SchedulerMetrics

optuna.logging.set_verbosity(optuna.logging.WARNING)


def render(sessions: Any, scheduler: SchedulerMetrics | None) -> bytes:
    """The API's /metrics body, with the scheduler's figures when one runs in the process."""
    return render_registry(sessions, None if scheduler is None else scheduler.registry)


# -- reading the exposition text -------------------------------------------------------------


@dataclass
class Scrape:
    """Samples of one exposition text, looked up by name and labels."""

    text: str

    def __post_init__(self) -> None:
        self.samples = [
            s for family in text_string_to_metric_families(self.text) for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) == 1, f"{name}{labels}: {found} in\n{self.text}"
        return float(found[0])

    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.samples)

    def buckets(self, name: str, **labels: str) -> dict[str, float]:
        """``le`` → cumulative count of the histogram ``name``'s buckets with ``labels``."""
        return {
            s.labels["le"]: s.value
            for s in self.samples
            if s.name == f"{name}_bucket" and {**s.labels, "le": ""} == {**labels, "le": ""}
        }
