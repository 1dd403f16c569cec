"""Many requests at once: more than FastAPI's threadpool (40) and the connection pool (15)."""

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.slow


def test_more_concurrent_requests_than_threads_and_connections_all_succeed(
    server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    # No scheduler: the studies stay pending, the API alone is under test.
    server = server_factory(sqlite_url, env={"TUNEFORGE_RUN_SCHEDULER": "false"})
    spec = {
        "name": "concurrent",
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "search_space": {"training.lr": {"type": "float", "low": 1e-4, "high": 1e-1}},
        "task": {"dataset": {"name": "digits"}, "model": {"family": "mlp"}},
    }
    study_id = server.api.post("/studies", json=spec).raise_for_status().json()["id"]
    headers = {"Authorization": f"Bearer {server.key}"}

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=f"{server.url}/api/v1", headers=headers, timeout=120, limits=limits
        ) as client:
            calls = [client.get(f"/studies/{study_id}/trials") for _ in range(100)]
            calls += [client.get(f"/studies/{study_id}") for _ in range(50)]
            calls += [client.post("/studies", json=spec) for _ in range(30)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    codes = asyncio.run(burst())
    # Before the fix, the threads all waited for connections held by requests that waited for
    # a thread: every request after the first few answered 500 after the pool's 30 s timeout.
    assert sorted(set(codes)) == [200, 201], {c: codes.count(c) for c in set(codes)}
    assert len(server.api.get("/studies", params={"limit": 100}).json()["items"]) == 31
