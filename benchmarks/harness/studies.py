"""Studies through the API: the no-op study, waiting for a study to end, reading its trials."""

import datetime as dt
import time
from typing import Any

import httpx

FINISHED = ("completed", "failed", "stopped")


def noop_study(name: str, trials: int, parallelism: int = 2) -> dict[str, Any]:
    """``trials`` no-op function trials (``task: {kind: function, name: noop}``), random search
    over one float ``x`` in [0, 1]: what the service itself costs per trial."""
    return {
        "name": name,
        "algorithm": {"name": "random", "settings": {"seed": 0}},
        "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "budget": {"max_trials": trials},
        "parallelism": parallelism,
        "task": {"kind": "function", "name": "noop"},
    }


def wait_study(
    api: httpx.Client, study_id: int, poll_s: float, timeout: float | None = None
) -> dict[str, Any]:
    """Poll ``GET /studies/{id}`` every ``poll_s`` until the study has ended; its detail.

    Raises:
        TimeoutError: it had not ended after ``timeout`` s.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        study: dict[str, Any] = api.get(f"/studies/{study_id}").raise_for_status().json()
        if study["status"] in FINISHED:
            return study
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"study {study_id} did not finish in {timeout:.0f} s")
        time.sleep(poll_s)


def all_trials(api: httpx.Client, study_id: int) -> list[dict[str, Any]]:
    """Every trial of a study, read a page of 1,000 at a time."""
    items: list[dict[str, Any]] = []
    while True:
        got = (
            api.get(f"/studies/{study_id}/trials", params={"offset": len(items), "limit": 1000})
            .raise_for_status()
            .json()
        )
        items += got["items"]
        if len(items) >= got["total"] or not got["items"]:
            return items


def ts(value: str | dt.datetime | None) -> float | None:
    """Epoch seconds of a datetime from the API or from Optuna (naive: local time, as Optuna's
    ``datetime.now()``)."""
    if value is None:
        return None
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.timestamp()
