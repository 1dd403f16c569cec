"""``benchmarks/load.py --topology cluster``: the service as a team runs it, on loopback.

A Ray head with 2 CPUs, two API processes (``tuneforge serve --no-scheduler``) and two
scheduler replicas (``tuneforge scheduler``) on one fresh PostgreSQL schema; two tenants with a
key each. Tenant A submits ``--studies`` studies, tenant B a fifth as many, all at once, half
through each API; meanwhile clients poll the studies (each with its tenant's key, through
either API) at ``--rate`` requests/s for ``--seconds``. Then every study must finish with
exactly its budget. Measured: errors (non-2xx or transport), studies and trials lost, and the
fairness figure: each tenant's share of the trial-seconds run while both tenants still had
studies to finish (a fair scheduler gives B half, though A submitted five times as many).
"""

import asyncio
import random
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.api_load.traffic import KEEPALIVE_S, study_body
from benchmarks.harness import (
    LOOPBACK_RAY,
    ROOT,
    all_trials,
    log,
    percentile,
    postgres_schema,
    ray_head,
    start_scheduler,
    start_server,
    ts,
)

TENANTS = ("a", "b")


@dataclass
class ClusterOutcome:
    studies: dict[str, int]  # per tenant
    trials: int
    epochs: int
    seconds: float
    rate: float
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # ms, polls from their send
    created: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (tenant, name)
    studies_lost: list[str] = field(default_factory=list)
    trials_lost: list[str] = field(default_factory=list)
    trials_complete: int = 0
    share: dict[str, float] = field(default_factory=dict)  # tenant -> share while both had work
    window_s: float = 0.0
    owners: dict[str, int] = field(default_factory=dict)  # replica -> studies it ran
    wall_s: float = 0.0
    note: str = ""


def run_cluster(studies: int, trials: int, epochs: int, seconds: float, rate: float) -> Any:
    out = ClusterOutcome({"a": studies, "b": max(1, studies // 5)}, trials, epochs, seconds, rate)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="tf-cluster-load-"))
    procs: list[Any] = []
    try:
        with postgres_schema() as url, ray_head() as address:
            data = workdir / "data"
            env = {**LOOPBACK_RAY, "TUNEFORGE_RAY_ADDRESS": address}
            api_env = {**env, "TUNEFORGE_RUN_SCHEDULER": "false"}
            apis = [start_server(url, data, env=api_env, cwd=ROOT) for _ in range(2)]
            procs += apis
            schedulers = [start_scheduler(url, data, address, env=env, cwd=ROOT) for _ in range(2)]
            procs += schedulers
            admin = apis[0].api
            keys = {t: admin.post("/keys", json={"tenant": t}).json()["key"] for t in TENANTS}
            for tenant in TENANTS:  # room for every study at once (the default quota is 20)
                quota = {"active_studies": max(20, out.studies[tenant])}
                admin.put(f"/tenants/{tenant}/quota", json=quota).raise_for_status()
            log(f"2 APIs, 2 schedulers on PostgreSQL and Ray at {address}")
            asyncio.run(_traffic([a.url for a in apis], keys, out))
            _wait_and_check([a.url for a in apis], keys, out)
            _fairness([a.url for a in apis], keys, out)
            _owners(schedulers, out)
    except Exception as exc:
        out.note = f"run failed: {type(exc).__name__}: {exc}"
    finally:
        for proc in procs:
            proc.stop()
    out.wall_s = time.perf_counter() - started
    return out


def _client(url: str, key: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=None, keepalive_expiry=KEEPALIVE_S
    )
    return httpx.AsyncClient(
        base_url=f"{url}/api/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        limits=limits,
    )


async def _traffic(urls: list[str], keys: dict[str, str], out: ClusterOutcome) -> None:
    tag = uuid.uuid4().hex[:6]
    clients = {(u, t): _client(u, keys[t], 64) for u in urls for t in TENANTS}
    order = [(t, i) for t in TENANTS for i in range(out.studies[t])]

    async def submit(n: int, tenant: str, i: int) -> None:
        body = study_body(n, out.trials, out.epochs, f"{tenant}{tag}")
        try:
            resp = await clients[(urls[n % 2], tenant)].post("/studies", json=body)
        except httpx.HTTPError as exc:
            out.errors.append(f"POST /studies: {type(exc).__name__}: {exc}")
            return
        if resp.status_code != 201:
            out.errors.append(f"POST /studies: {resp.status_code} {resp.text[:200]}")
            return
        out.created[int(resp.json()["id"])] = (tenant, body["name"])

    async def poll() -> None:
        rng = random.Random(0)
        t0 = time.perf_counter()
        sent: list[asyncio.Task[None]] = []
        for k in range(int(out.seconds * out.rate)):
            delay = t0 + k / out.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if not out.created:
                continue
            study_id, (tenant, _) = rng.choice(list(out.created.items()))
            sent.append(asyncio.create_task(one_poll(urls[k % 2], tenant, study_id)))
        await asyncio.gather(*sent)

    async def one_poll(url: str, tenant: str, study_id: int) -> None:
        sent = time.perf_counter()
        try:
            resp = await clients[(url, tenant)].get(f"/studies/{study_id}")
        except httpx.HTTPError as exc:
            out.errors.append(f"GET /studies/{study_id}: {type(exc).__name__}: {exc}")
            return
        out.latencies.append((time.perf_counter() - sent) * 1000)
        if resp.status_code != 200:
            out.errors.append(f"GET /studies/{study_id}: {resp.status_code} {resp.text[:200]}")

    await asyncio.gather(*(submit(n, t, i) for n, (t, i) in enumerate(order)), poll())
    for client in clients.values():
        await client.aclose()


def _api(url: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def _wait_and_check(urls: list[str], keys: dict[str, str], out: ClusterOutcome) -> None:
    deadline = time.monotonic() + 900
    for study_id, (tenant, name) in sorted(out.created.items()):
        with _api(urls[study_id % 2], keys[tenant]) as api:
            while True:
                row = api.get(f"/studies/{study_id}").raise_for_status().json()
                if row["status"] in ("completed", "failed", "stopped"):
                    break
                if time.monotonic() > deadline:
                    out.note = "not every study finished within 900 s"
                    break
                time.sleep(1.0)
            if row["status"] != "completed":
                out.studies_lost.append(f"{name}: {row['status']} ({row['status_reason']})")
            states = [t["state"] for t in all_trials(api, study_id)]
            out.trials_complete += states.count("COMPLETE")
            if states != ["COMPLETE"] * out.trials:
                out.trials_lost.append(f"{name}: {states} (budget {out.trials})")
    missing = sum(out.studies.values()) - len(out.created)
    if missing:
        out.studies_lost.append(f"{missing} submissions not answered 201")


def _fairness(urls: list[str], keys: dict[str, str], out: ClusterOutcome) -> None:
    spans: dict[str, list[tuple[float, float]]] = {t: [] for t in TENANTS}
    for study_id, (tenant, _) in out.created.items():
        with _api(urls[0], keys[tenant]) as api:
            for t in all_trials(api, study_id):
                start, end = ts(t["datetime_start"]), ts(t["datetime_complete"])
                if start is not None and end is not None:
                    spans[tenant].append((start, end))
    if not all(spans.values()):
        return
    begin = min(s for tenant_spans in spans.values() for s, _ in tenant_spans)
    end = min(max(e for _, e in tenant_spans) for tenant_spans in spans.values())
    used = {
        t: sum(max(0.0, min(e, end) - max(s, begin)) for s, e in tenant_spans)
        for t, tenant_spans in spans.items()
    }
    total = sum(used.values()) or 1.0
    out.share = {t: used[t] / total for t in TENANTS}
    out.window_s = end - begin


def _owners(schedulers: list[Any], out: ClusterOutcome) -> None:
    """How many studies each replica ran (its log says so as it opens one)."""
    for n, scheduler in enumerate(schedulers, 1):
        out.owners[f"replica {n}"] = len(re.findall(r"study \d+ \(.*\) running", scheduler.log()))


def report_rows(out: ClusterOutcome) -> list[tuple[str, str]]:
    lat = sorted(out.latencies)
    share = ", ".join(f"{t} {out.share.get(t, 0):.0%}" for t in TENANTS)
    return [
        ("errors (non-2xx or transport), goal 0", f"**{len(out.errors)}**"),
        ("studies lost, goal 0", f"**{len(out.studies_lost)}**"),
        ("trials lost, goal 0", f"**{len(out.trials_lost)}**"),
        ("studies submitted: tenant a / tenant b", f"{out.studies['a']} / {out.studies['b']}"),
        ("trials complete", str(out.trials_complete)),
        (
            "fairness: share of trial-seconds while both tenants had work",
            f"{share} (over {out.window_s:.0f} s)",
        ),
        (
            "polls answered, p50 / p99 ms from send",
            f"{len(lat)}, {percentile(lat, 50):.0f} / {percentile(lat, 99):.0f}" if lat else "0",
        ),
        ("studies run by each scheduler replica", ", ".join(f"{v}" for v in out.owners.values())),
        ("wall time, s", f"{out.wall_s:.0f}"),
    ]
