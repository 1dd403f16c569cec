"""The load of ``benchmarks/load.py``: what one request measured, what one run measured, and
the client that submits studies and polls at a fixed open-loop rate."""

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml

from benchmarks.harness import ROOT, Server

EXAMPLE = ROOT / "examples" / "digits-mlp.yaml"
KEEPALIVE_S = 2.0  # the client's keep-alive expiry; uvicorn closes idle connections after 5 s
ENDPOINTS = ("POST /studies", "GET /studies/{id}", "GET /studies/{id}/trials", "GET /studies")


@dataclass
class Sample:
    """One request: when it was planned, sent and answered (seconds since the run's start)."""

    endpoint: str
    planned: float
    sent: float
    done: float
    status: int | None  # None: a transport error
    error: str = ""

    @property
    def latency(self) -> float:
        """From the planned start: includes any wait for a free client (open loop)."""
        return self.done - self.planned

    @property
    def service(self) -> float:
        """From the actual send: what a closed-loop client would have measured."""
        return self.done - self.sent

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Outcome:
    """Everything one run measured."""

    database: str
    studies: int
    trials: int
    epochs: int
    seconds: float
    rate: float
    clients: int
    max_poll_s: float = math.inf  # no poll is sent after this many seconds
    startup_s: float = 0.0
    submissions: list[Sample] = field(default_factory=list)
    polls: list[Sample] = field(default_factory=list)
    poll_wall_s: float = 0.0  # from the first planned poll to the last answer
    polls_planned: int = 0
    created: dict[int, str] = field(default_factory=dict)  # id -> name, answered 201
    studies_lost: list[str] = field(default_factory=list)  # one line per lost study
    trials_lost: list[str] = field(default_factory=list)  # one line per study short of trials
    db_trials_lost: list[str] = field(default_factory=list)  # the same, from Optuna's tables
    db_checked: bool = False
    trials_complete: int = 0
    trials_in_window: int = 0  # trials that completed during the polling window
    trials_while_polled: int = 0  # trials that completed before the last poll's answer
    all_done_s: float | None = None  # last trial's end, seconds after the first POST
    waited_s: float = 0.0
    error_examples: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)  # ERROR / Traceback lines
    foreign_cpu_s: float | None = None
    # CPU seconds during the load (submissions and polling): this client, the server process
    # (API and scheduler), the server's other processes (Ray and its trial workers).
    cpu_client_s: float = 0.0
    cpu_server_s: float = 0.0
    cpu_ray_s: float = 0.0
    wall_s: float = 0.0
    note: str = ""

    def errors(self, samples: list[Sample] | None = None) -> int:
        return sum(
            not s.ok for s in (self.submissions + self.polls if samples is None else samples)
        )


def study_body(i: int, trials: int, epochs: int, tag: str) -> dict[str, Any]:
    """The quickstart study with a small budget and a unique name."""
    body: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    body["name"] = f"load-{tag}-{i:03d}"
    body["algorithm"].setdefault("settings", {})["seed"] = i
    body["budget"] = {"max_trials": trials}
    body["parallelism"] = 1
    body["task"]["training"]["epochs"] = epochs
    return body


async def _request(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    endpoint: str,
    planned: float,
    t0: float,
    json: dict[str, Any] | None = None,
) -> tuple[Sample, httpx.Response | None]:
    sent = time.perf_counter() - t0
    try:
        resp = await client.request(method, path, json=json)
    except httpx.HTTPError as exc:
        done = time.perf_counter() - t0
        return Sample(endpoint, planned, sent, done, None, f"{type(exc).__name__}: {exc}"), None
    done = time.perf_counter() - t0
    error = "" if resp.is_success else f"{resp.status_code}: {resp.text[:300]}"
    return Sample(endpoint, planned, sent, done, resp.status_code, error), resp


async def _submit(
    client: httpx.AsyncClient, out: Outcome, tag: str, t0: float, created: asyncio.Event
) -> None:
    async def one(i: int) -> None:
        body = study_body(i, out.trials, out.epochs, tag)
        sample, resp = await _request(
            client, "POST", "/studies", "POST /studies", 0.0, t0, json=body
        )
        out.submissions.append(sample)
        if resp is not None and resp.status_code == 201:
            out.created[int(resp.json()["id"])] = body["name"]
            created.set()
        elif sample.error:
            out.error_examples.append(f"POST /studies ({body['name']}) -> {sample.error}")

    await asyncio.gather(*(one(i) for i in range(out.studies)))


async def _poll(client: httpx.AsyncClient, out: Outcome, t0: float) -> None:
    """``--clients`` tasks share the planned slots k = 0, 1, 2, ... (slot k at k / rate s):
    task j takes slots j, j + clients, ...; a late task sends at once, until ``max_poll_s``."""
    total = out.polls_planned = int(out.seconds * out.rate)
    rng = random.Random(0)
    # The study and endpoint of every slot, drawn up front so the clients share no state.
    picks = [rng.random() for _ in range(total)]

    async def worker(j: int) -> None:
        for k in range(j, total, out.clients):
            planned = k / out.rate
            delay = t0 + planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() - t0 > out.max_poll_s:
                return  # the hard cap: the rest of this client's slots stay unsent
            ids = list(out.created)
            if not ids:
                path, endpoint = "/studies", "GET /studies"
            else:
                study = ids[int(picks[k] * len(ids))]
                if k % 2:
                    path, endpoint = f"/studies/{study}/trials", "GET /studies/{id}/trials"
                else:
                    path, endpoint = f"/studies/{study}", "GET /studies/{id}"
            sample, _ = await _request(client, "GET", path, endpoint, planned, t0)
            out.polls.append(sample)
            if sample.error and len(out.error_examples) < 20:
                out.error_examples.append(f"GET {path} -> {sample.error}")

    await asyncio.gather(*(worker(j) for j in range(out.clients)))


async def load(server: Server, key: str, out: Outcome, tag: str) -> float:
    """Submissions and polling at once; return the run's start (perf_counter)."""
    # Idle connections expire on the client well before uvicorn's 5 s keep-alive timeout
    # (httpx's default is also 5 s): otherwise the client may send on a connection the server
    # is closing as idle, and the race shows up as a ReadError that is no fault of the service.
    limits = httpx.Limits(
        max_connections=out.clients + out.studies,
        max_keepalive_connections=None,
        keepalive_expiry=KEEPALIVE_S,
    )
    async with httpx.AsyncClient(
        base_url=f"{server.url}/api/v1",
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        limits=limits,
    ) as client:
        created = asyncio.Event()
        t0 = time.perf_counter()
        await asyncio.gather(_submit(client, out, tag, t0, created), _poll(client, out, t0))
        out.poll_wall_s = max((s.done for s in out.polls), default=0.0)
    return t0
