"""Quotas and fair share between tenants (issue 15), through a real server on a Ray cluster of
two CPUs: tenant A fills the cluster with ten studies, tenant B submits one; B's first trial
takes the next freed slot. A's eleventh study is over its quota (429, with the numbers), and
/metrics counts what tenants hold without naming any."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import Server, digits_study, wait_for
from tests.service.reports._metrics import Scrape

pytestmark = pytest.mark.slow

QUOTA = 10


def starts(api: httpx.Client, study_id: int) -> list[datetime]:
    items = api.get(f"/studies/{study_id}/trials", params={"limit": 100}).json()["items"]
    return [utc(t["datetime_start"]) for t in items if t["datetime_start"]]


def utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def running(api: httpx.Client, study_id: int) -> int:
    return int(api.get(f"/studies/{study_id}").json()["trial_counts"]["RUNNING"])


def test_a_tenant_with_one_study_gets_the_next_freed_slot(
    server_factory: Callable[..., Server], sqlite_url: str
) -> None:
    server = server_factory(sqlite_url, env={"TUNEFORGE_QUOTA_ACTIVE_STUDIES": str(QUOTA)})
    keys = {t: server.api.post("/keys", json={"tenant": t}).json()["key"] for t in ("a", "b")}
    a, b = server.client(keys["a"]), server.client(keys["b"])

    def spec(name: str) -> dict[str, Any]:
        # Trials of a few seconds each, two at a time: the cluster's two CPUs are full.
        return digits_study(name, max_trials=4, epochs=60, lr=0.01)

    crowd = [a.post("/studies", json=spec(f"crowd-{i}")).json()["id"] for i in range(QUOTA)]
    over = a.post("/studies", json=spec("one-too-many"))
    assert over.status_code == 429
    assert (over.json()["limit"], over.json()["usage"]) == (QUOTA, QUOTA)
    wait_for(a, crowd[0], lambda s: sum(running(a, i) for i in crowd) >= 2, timeout=120)

    late = b.post("/studies", json=spec("late")).raise_for_status().json()["id"]
    opened = wait_for(b, late, lambda s: s["status"] == "running", timeout=60)["started_at"]
    wait_for(b, late, lambda s: starts(b, late) != [], timeout=120)
    first_b = min(starts(b, late))
    opened_at = utc(opened)
    # Every trial of A that started after B's study was open started after B's first trial:
    # the first slot freed went to B, though A had ten studies waiting for it.
    a_after = [t for i in crowd for t in starts(a, i) if t > opened_at]
    assert all(t >= first_b for t in a_after), (first_b, sorted(a_after)[:3])

    scrape = Scrape(httpx.get(f"{server.url}/metrics", timeout=10).text)
    assert scrape.value("tuneforge_tenants", quota="active_studies") == 2
    assert scrape.value("tuneforge_tenants_at_limit", quota="active_studies") == 1
    assert scrape.value("tuneforge_tenant_usage_max", quota="active_studies") == QUOTA
    for study_id in [*crowd, late]:
        server.api.post(f"/studies/{study_id}/stop")
