"""The requests of ``benchmarks/api_scale.py``: each endpoint measured, the check of its
answer, and the rounds of sequential requests."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.scale.study import Written

PAGE = 100


@dataclass
class Endpoint:
    """One measured request: its path and query, and whether the issue's goal covers it."""

    name: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    goal: bool = False
    check: Callable[[dict[str, Any]], str | None] = lambda _: None
    latencies: list[float] = field(default_factory=list)
    spent_s: float = 0.0


def endpoints(study_id: int, written: Written, n: int) -> list[Endpoint]:
    """What is measured, each with a check of its answer (None: right)."""
    total = sum(written.counts.values())
    complete = written.counts["COMPLETE"]
    mid = min(5000, max(n - PAGE, 0))

    def page(offset: int, of: int, state: str | None = None) -> Callable[[dict[str, Any]], Any]:
        def check(body: dict[str, Any]) -> str | None:
            want = max(0, min(PAGE, of - offset))
            items = body["items"]
            if body["total"] != of or len(items) != want:
                return f"total {body['total']} / {len(items)} items, expected {of} / {want}"
            if state and any(t["state"] != state for t in items):
                return f"a trial not {state} in the page"
            if not state and items and items[0]["number"] != offset:
                return f"page starts at trial {items[0]['number']}, expected {offset}"
            return None

        return check

    def detail(body: dict[str, Any]) -> str | None:
        if body["trial_counts"] != written.counts or body["best_value"] != written.best_value:
            return f"counts {body['trial_counts']} best {body['best_value']}"
        return None

    def best(body: dict[str, Any]) -> str | None:
        if body["number"] != written.best_number or body["value"] != written.best_value:
            return f"best trial {body['number']} ({body['value']})"
        return None

    base = f"/studies/{study_id}"
    return [
        Endpoint(
            "GET /studies/{id}/trials (first page)",
            f"{base}/trials",
            {"limit": PAGE},
            True,
            page(0, total),
        ),
        Endpoint(
            f"GET /studies/{{id}}/trials?offset={mid}",
            f"{base}/trials",
            {"offset": mid, "limit": PAGE},
            True,
            page(mid, total),
        ),
        Endpoint("GET /studies/{id}", base, {}, True, detail),
        Endpoint(
            "GET /studies/{id}/trials?state=COMPLETE&offset=3000",
            f"{base}/trials",
            {"state": "COMPLETE", "offset": min(3000, complete), "limit": PAGE},
            False,
            page(min(3000, complete), complete, "COMPLETE"),
        ),
        Endpoint(f"GET /studies/{{id}}/trials/{n // 2}", f"{base}/trials/{n // 2}"),
        Endpoint("GET /studies/{id}/best", f"{base}/best", {}, False, best),
        Endpoint("GET /studies", "/studies"),
    ]


def measure(
    api: httpx.Client,
    eps: list[Endpoint],
    errors: list[str],
    warmup: int,
    requests: int,
    max_seconds: float,
) -> float:
    """``warmup`` requests each, then rounds of one request per endpoint until each has
    ``requests`` answers or has spent ``max_seconds``; wrong answers go to ``errors`` (the
    first 20). Returns the seconds the rounds took."""

    def one(ep: Endpoint) -> float:
        t = time.perf_counter()
        resp = api.get(ep.path, params=ep.params)
        took = time.perf_counter() - t
        problem = (
            f"{resp.status_code}: {resp.text[:200]}" if resp.status_code != 200 else None
        ) or ep.check(resp.json())
        if problem and len(errors) < 20:
            errors.append(f"{ep.name}: {problem}")
        return took

    for ep in eps:
        spent = 0.0
        for _ in range(warmup):
            spent += one(ep)
            if spent > max_seconds / 10:
                break
    started = time.perf_counter()
    for _ in range(requests):
        live = [e for e in eps if e.spent_s < max_seconds]
        if not live:
            break
        for ep in live:
            took = one(ep)
            ep.latencies.append(took)
            ep.spent_s += took
    return time.perf_counter() - started
