"""The API under load on loopback: 50 concurrent study submissions while clients poll at a
fixed rate.

One ``tuneforge serve`` (its own process, its own local Ray with 2 CPUs, SQLite in a temporary
data directory or a fresh PostgreSQL schema) gets, at the same instant:

1. ``--studies`` (50) ``POST /api/v1/studies``, all fired at once from one ``httpx.AsyncClient``:
   small real studies, the quickstart's digits MLP (``examples/digits-mlp.yaml``) with a budget
   of ``--trials`` (3) trials of ``--epochs`` (2) epochs, one trial at a time, a unique name each;
2. for ``--seconds`` (60), ``GET /api/v1/studies/{id}`` and ``GET /api/v1/studies/{id}/trials``
   (alternating, a random study among those created so far; ``GET /api/v1/studies`` until the
   first exists) at a fixed open-loop rate of ``--rate`` (200) requests/s from ``--clients``
   (32) concurrent client tasks. Request k is planned at ``k / rate`` seconds; a client that
   falls behind sends at once, and every latency is measured from the *planned* start, so a
   stalled server shows as latency instead of as fewer requests (no coordinated omission).

Then it waits (at most ``--max-wait`` s) for every study to finish and counts errors (non-2xx
answers and transport errors, submissions and polls), latency percentiles per endpoint, the
achieved rate, studies lost (answered 201 but missing, duplicated or not ``completed``) and
trials lost (a study whose trials are not exactly ``--trials`` COMPLETE ones, read through the
API and again straight from Optuna's tables once the server has stopped).
Goals (the issue): 0 errors, 0 studies lost, 0 trials lost. The issue sets no latency goal.

Usage::

    .venv/bin/python benchmarks/load.py                         # SQLite, 60 s (~3-4 min)
    .venv/bin/python benchmarks/load.py --database postgresql   # a fresh schema in local PG
    .venv/bin/python benchmarks/load.py --database both --write # both, into RESULTS.md (~7 min)
    .venv/bin/python benchmarks/load.py --seconds 10 --studies 10   # a smoke run (~1 min)

The server answers fewer than 200 polls/s on 2 cores, so the polls queue and take longer than
``--seconds`` to send; ``--max-poll-s`` (300) caps that, ``--max-wait`` (600) the wait for the
studies, and the server is always stopped (SIGTERM, then SIGKILL for its process group).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import yaml  # noqa: E402

from benchmarks.results import RESULTS, machine_line, write_section  # noqa: E402

SECTION = "## API under load: concurrent submissions and polling (loopback)"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
EXAMPLE = ROOT / "examples" / "digits-mlp.yaml"
FINISHED = ("completed", "failed", "stopped")
# The machine counts as busy when other processes used more than this many CPUs on average.
FOREIGN_RATE = 0.05
KEEPALIVE_S = 2.0  # the client's keep-alive expiry; uvicorn closes idle connections after 5 s
ENDPOINTS = ("POST /studies", "GET /studies/{id}", "GET /studies/{id}/trials", "GET /studies")


# -- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running ``tuneforge serve`` in its own session."""

    url: str
    database_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_s: float = 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 60 s; then kill whatever of its Ray outlived it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # The server runs in its own session (and process group): reap its Ray.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def start_server(database_url: str, data_dir: Path, timeout: float = 180) -> Server:
    """Start ``python -m service.cli serve`` on a free loopback port; return once
    ``GET /healthz`` reports the scheduler running (Ray up, workers warmed)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    env = {
        **os.environ,
        "TUNEFORGE_HOST": "127.0.0.1",
        "TUNEFORGE_PORT": str(port),
        "TUNEFORGE_DATA_DIR": str(data_dir),
        "TUNEFORGE_DATABASE_URL": database_url,
        "TUNEFORGE_RAY_NUM_CPUS": "2",
    }
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", database_url, data_dir, proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{server.log()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            if httpx.get(f"{server.url}/healthz", timeout=2).json()["scheduler"] == "running":
                server.startup_s = time.perf_counter() - started
                return server
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"server did not become healthy:\n{server.log()[-4000:]}")


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A database URL for a fresh server: a SQLite file in ``workdir`` or a fresh schema in
    the local PostgreSQL's ``test`` database (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'tuneforge.db'}"
        return
    import psycopg

    schema = f"tf_load_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# -- what is measured -------------------------------------------------------------------------


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


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of values; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# -- the load ---------------------------------------------------------------------------------


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


# -- after the load: did everything arrive? ---------------------------------------------------


def _all_trials(api: httpx.Client, study_id: int) -> list[dict[str, Any]]:
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


def _epoch_s(value: str | None) -> float | None:
    """Epoch seconds of a datetime written by Optuna (naive local time)."""
    return None if value is None else dt.datetime.fromisoformat(value).timestamp()


def wait_and_check(api: httpx.Client, out: Outcome, max_wait: float, t0_wall: float) -> None:
    """Wait for every created study to finish (at most max_wait s), then count what was lost."""
    started = time.monotonic()
    rows: dict[int, dict[str, Any]] = {}
    while True:
        got = api.get("/studies", params={"limit": 500}).raise_for_status().json()
        rows = {r["id"]: r for r in got["items"]}
        if all(rows.get(i, {}).get("status") in FINISHED for i in out.created):
            break
        if time.monotonic() - started > max_wait:
            out.note = f"not all studies finished within --max-wait {max_wait:g} s"
            break
        time.sleep(1.0)
    out.waited_s = time.monotonic() - started
    names = [r["name"] for r in rows.values()]
    ends: list[float] = []
    for study_id, name in sorted(out.created.items()):
        row = rows.get(study_id)
        if row is None:
            out.studies_lost.append(f"{name} (id {study_id}): missing from GET /studies")
            continue
        if names.count(name) != 1 or row["name"] != name:
            out.studies_lost.append(f"{name} (id {study_id}): listed {names.count(name)} times")
        if row["status"] != "completed":
            out.studies_lost.append(
                f"{name} (id {study_id}): status {row['status']} ({row['status_reason']})"
            )
        trials = _all_trials(api, study_id)
        states = [t["state"] for t in trials]
        complete = states.count("COMPLETE")
        out.trials_complete += complete
        if complete != out.trials or len(trials) != out.trials:
            out.trials_lost.append(
                f"{name} (id {study_id}): {len(trials)} trials, "
                + ", ".join(f"{s} {states.count(s)}" for s in sorted(set(states)))
                + f" (budget {out.trials}); reasons: "
                + "; ".join(sorted({str(t["fail_reason"]) for t in trials if t["fail_reason"]}))
            )
        if row["trial_counts"].get("COMPLETE") != complete:
            out.trials_lost.append(
                f"{name} (id {study_id}): detail counts {row['trial_counts']} but the trial "
                f"list has {complete} COMPLETE"
            )
        for t in trials:
            end = _epoch_s(t["datetime_complete"])
            if t["state"] == "COMPLETE" and end is not None:
                ends.append(end - t0_wall)
    out.trials_in_window = sum(0 <= e <= out.seconds for e in ends)
    out.trials_while_polled = sum(0 <= e <= out.poll_wall_s for e in ends)
    out.all_done_s = max(ends) if ends else None
    # Rows the server lists that this run did not create: a double insert would show here.
    extra = [r for i, r in rows.items() if i not in out.created]
    for r in extra:
        out.studies_lost.append(f"unexpected study {r['name']} (id {r['id']}) in GET /studies")


def check_database(database_url: str, out: Outcome, optuna_names: dict[int, str]) -> None:
    """Count every created study's trials straight from Optuna's tables (server stopped)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(database_url)
    try:
        for study_id, optuna_name in sorted(optuna_names.items()):
            name = out.created[study_id]
            try:
                study = optuna.load_study(study_name=optuna_name, storage=storage)
            except KeyError:
                out.db_trials_lost.append(f"{name}: Optuna study {optuna_name} missing")
                continue
            states = [t.state.name for t in study.get_trials(deepcopy=False)]
            if states.count("COMPLETE") != out.trials or len(states) != out.trials:
                out.db_trials_lost.append(
                    f"{name}: "
                    + ", ".join(f"{s} {states.count(s)}" for s in sorted(set(states)))
                    + f" in Optuna's tables (budget {out.trials})"
                )
        out.db_checked = True
    finally:
        storage.remove_session()
        storage.engine.dispose()


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of process ``root`` and of each live descendant."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            procs[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    tree, changed = {root}, True
    while changed:
        changed = False
        for pid, (ppid, _) in procs.items():
            if pid not in tree and ppid in tree:
                tree.add(pid)
                changed = True
    return {pid: procs[pid][1] for pid in tree if pid in procs}


def cpu_used(before: dict[int, float], after: dict[int, float], root: int) -> tuple[float, float]:
    """CPU seconds used between two ``tree_cpu`` snapshots by ``root`` and by the rest of its
    tree (a lower bound: processes that ended meanwhile are missed)."""
    used = {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()}
    own = used.pop(root, 0.0)
    return own, sum(used.values())


def log_problems(text: str) -> list[str]:
    """The server log's errors, counted: each exception with the innermost frame of the
    project's code it passed through, each message logged with a traceback, each 5xx answer."""
    counts: dict[str, int] = {}

    def add(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    frame_re = re.compile(r'File ".*?/((?:service|search|models)/[^"]+)", line (\d+), in (\w+)')
    exc_re = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Timeout)\w*)(: .*)?$")
    access_re = re.compile(r'"(GET|POST|PATCH|DELETE|PUT) (\S+) HTTP/[\d.]+" (5\d\d)')
    frame, previous = "", ""
    for line in text.splitlines():
        if line.startswith("Traceback"):
            frame = ""
            if previous and "Exception in ASGI application" not in previous:
                add(f"logged with a traceback: {previous.strip()[:200]}")
        elif found := frame_re.search(line):
            frame = f"{found[1]}:{found[2]} in {found[3]}"
        elif found := exc_re.match(line):
            add(f"{line[:240]}" + (f" (innermost project frame: {frame})" if frame else ""))
        elif found := access_re.search(line):
            path = re.sub(r"/\d+", "/{id}", found[2].split("?")[0])
            add(f"answered {found[3]}: {found[1]} {path}")
        previous = line
    return [f"{n} x {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def error_summary(out: Outcome) -> list[str]:
    """The client's errors by endpoint and outcome, with one example answer each."""
    groups: dict[str, list[Sample]] = {}
    for sample in out.submissions + out.polls:
        if not sample.ok:
            kind = str(sample.status) if sample.status else sample.error.split(":")[0]
            groups.setdefault(f"{sample.endpoint} -> {kind}", []).append(sample)
    return [
        f"{len(samples)} x {key} (sent {min(x.sent for x in samples):.1f}-"
        f"{max(x.sent for x in samples):.1f} s, answered {min(x.done for x in samples):.1f}-"
        f"{max(x.done for x in samples):.1f} s after the start, latency "
        f"{_ms(min(x.latency for x in samples))}-{_ms(max(x.latency for x in samples))} ms; "
        f"answer: {samples[0].error[:200]!r})"
        for key, samples in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    ]


# -- one run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Outcome:
    out = Outcome(
        args.database,
        args.studies,
        args.trials,
        args.epochs,
        args.seconds,
        args.rate,
        args.clients,
        args.max_poll_s,
    )
    workdir = Path(tempfile.mkdtemp(prefix="tf-load-"))
    started = time.perf_counter()
    server: Server | None = None
    try:
        with database(args.database, workdir) as url:
            from service.auth import read_admin_key

            from benchmarks.search_quality import ForeignLoad, wait_idle

            if args.wait_idle > 0:
                wait_idle(args.wait_idle)
            server = start_server(url, workdir / "data")
            out.startup_s = server.startup_s
            print(f"server ready in {server.startup_s:.1f} s at {server.url} ({args.database})")
            key = read_admin_key(server.data_dir)
            if not key:
                raise RuntimeError("the server wrote no admin key")
            tag = uuid.uuid4().hex[:6]
            with ForeignLoad() as foreign:
                t0_wall = time.time()
                client0 = time.process_time()
                tree0 = tree_cpu(server.process.pid)
                asyncio.run(load(server, key, out, tag))
                out.cpu_client_s = time.process_time() - client0
                out.cpu_server_s, out.cpu_ray_s = cpu_used(
                    tree0, tree_cpu(server.process.pid), server.process.pid
                )
                print(
                    f"load done: {len(out.submissions)} submissions, {len(out.polls)} polls "
                    f"in {out.poll_wall_s:.1f} s, {out.errors()} errors; waiting for the studies",
                    flush=True,
                )
                headers = {"Authorization": f"Bearer {key}"}
                with httpx.Client(
                    base_url=f"{server.url}/api/v1", headers=headers, timeout=60
                ) as api:
                    wait_and_check(api, out, args.max_wait, t0_wall)
                    optuna_names = {
                        i: api.get(f"/studies/{i}").raise_for_status().json()["optuna_study_name"]
                        for i in out.created
                    }
            out.foreign_cpu_s = foreign.cpu_s
            server.stop()
            out.log_problems = log_problems(server.log())
            check_database(url, out, optuna_names)
    except Exception as exc:  # report what was measured so far
        failed = f"run failed: {type(exc).__name__}: {exc}"
        out.note = f"{out.note}; {failed}" if out.note else failed
    finally:
        if server is not None:
            server.stop()
            if not out.log_problems:
                out.log_problems = log_problems(server.log())
            if args.keep_log:
                shutil.copy(server.log_path, args.keep_log)
        shutil.rmtree(workdir, ignore_errors=True)
    out.wall_s = time.perf_counter() - started
    return out


# -- reporting --------------------------------------------------------------------------------


def _ms(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{1000 * x:.0f}" if x >= 0.1 else f"{1000 * x:.1f}"


def latency_table(outs: list[Outcome]) -> str:
    """One row per endpoint (and all polls): count, errors, p50 / p99 / max latency."""
    many = len(outs) > 1
    lines = [
        ("| database " if many else "")
        + "| endpoint | requests | errors | p50 ms | p99 ms | max ms | p99 ms, from send |",
        ("|---" if many else "") + "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for out in outs:
        groups = [
            (e, [s for s in out.submissions + out.polls if s.endpoint == e]) for e in ENDPOINTS
        ]
        groups.append(("all polls", out.polls))
        for name, samples in groups:
            if not samples:
                continue
            lat = [s.latency for s in samples]
            lines.append(
                (f"| {out.database} " if many else "")
                + f"| {name} | {len(samples)} | {out.errors(samples)} "
                f"| {_ms(percentile(lat, 50))} | {_ms(percentile(lat, 99))} "
                f"| {_ms(max(lat))} | {_ms(percentile([s.service for s in samples], 99))} |"
            )
    return "\n".join(lines)


def _met(n: int) -> str:
    return "goal met" if n == 0 else "goal NOT met"


def figures_table(outs: list[Outcome]) -> str:
    """The issue's figures and goals, one column per run."""
    head = "| figure | " + " | ".join(o.database for o in outs) + " |"
    rows = [head, "|---|" + "---:|" * len(outs)]

    def row(name: str, cells: list[str]) -> None:
        rows.append(f"| {name} | " + " | ".join(cells) + " |")

    row(
        "errors (non-2xx or transport), goal 0",
        [f"**{o.errors()}** ({_met(o.errors())})" for o in outs],
    )
    row(
        "studies lost (answered 201, then missing or not completed), goal 0",
        [f"**{len(o.studies_lost)}** ({_met(len(o.studies_lost))})" for o in outs],
    )
    row(
        "trials lost (API / Optuna's tables), goal 0",
        [
            f"**{len(o.trials_lost)} / {len(o.db_trials_lost) if o.db_checked else 'n/a'}** "
            f"({_met(len(o.trials_lost) + len(o.db_trials_lost) + (not o.db_checked))})"
            for o in outs
        ],
    )
    row("studies submitted / answered 201", [f"{o.studies} / {len(o.created)}" for o in outs])
    row(
        "POST /studies latency p50 / p99 / max, ms",
        [_lat3([s.latency for s in o.submissions]) for o in outs],
    )
    row("poll latency p50 / p99 / max, ms", [_lat3([s.latency for s in o.polls]) for o in outs])
    row("polls planned / sent", [f"{o.polls_planned} / {len(o.polls)}" for o in outs])
    row(
        "polls: planned rate / achieved, req/s",
        [
            f"{o.rate:g} / {len(o.polls) / o.poll_wall_s:.0f}" if o.poll_wall_s else "n/a"
            for o in outs
        ],
    )
    row(
        "trials complete (budget)",
        [f"{o.trials_complete} ({o.studies * o.trials})" for o in outs],
    )
    row(
        "trials completed in the planned polling window / until the last poll's answer",
        [
            f"{o.trials_in_window} in {o.seconds:g} s / {o.trials_while_polled} in "
            f"{o.poll_wall_s:.0f} s"
            for o in outs
        ],
    )
    row(
        "all trials done after, s / trials per minute overall",
        [
            f"{o.all_done_s:.0f} / {60 * o.trials_complete / o.all_done_s:.0f}"
            if o.all_done_s
            else "n/a"
            for o in outs
        ],
    )
    row(
        "other processes' CPU during the run, CPU-s",
        [
            "n/a"
            if o.foreign_cpu_s is None
            else f"{o.foreign_cpu_s:.1f}" + (" (busy machine)" if _busy(o) else "")
            for o in outs
        ],
    )
    row(
        "CPU-s during the load: client / server process / its Ray and trials",
        [f"{o.cpu_client_s:.1f} / {o.cpu_server_s:.1f} / {o.cpu_ray_s:.1f}" for o in outs],
    )
    row("server start (Ray up, workers warmed), s", [f"{o.startup_s:.1f}" for o in outs])
    return "\n".join(rows)


def _lat3(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{_ms(percentile(values, 50))} / {_ms(percentile(values, 99))} / {_ms(max(values))}"


def _busy(out: Outcome) -> bool:
    window = out.poll_wall_s + out.waited_s
    return out.foreign_cpu_s is not None and out.foreign_cpu_s > FOREIGN_RATE * max(window, 1)


def problems(out: Outcome) -> list[str]:
    """What went wrong, for the terminal and for the notes."""
    lines = [f"{out.database}: {out.note}"] if out.note else []
    if len(out.polls) < out.polls_planned:
        lines.append(
            f"{out.database}: {out.polls_planned - len(out.polls)} of {out.polls_planned} "
            f"planned polls not sent: the client stops sending after --max-poll-s "
            f"{out.max_poll_s:g} s"
        )
    lines += [f"{out.database}: errors: {e}" for e in error_summary(out)]
    lines += [f"{out.database}: study lost: {s}" for s in out.studies_lost[:10]]
    lines += [f"{out.database}: trials lost: {s}" for s in out.trials_lost[:10]]
    lines += [
        f"{out.database}: trials lost (Optuna's tables): {s}" for s in out.db_trials_lost[:10]
    ]
    lines += [f"{out.database}: server log: {s}" for s in out.log_problems[:12]]
    return lines


def machine() -> str:
    import importlib.metadata as md

    return machine_line(
        ", ".join(f"{p} {md.version(p)}" for p in ("ray", "optuna", "fastapi", "uvicorn", "httpx"))
    )


def section(outs: list[Outcome], command: str) -> str:
    o = outs[0]
    dbs = " and ".join(
        "SQLite (a file in a temporary data directory)"
        if x.database == "sqlite"
        else "PostgreSQL 15 (a fresh schema of the local server, dropped afterwards)"
        for x in outs
    )
    busy = [x for x in outs if _busy(x)]
    lines = [
        SECTION,
        "",
        f"- Date: {dt.date.today().isoformat()}",
        f"- Machine: {machine()}",
        f"- Command: `{command}`",
        f"- Setup: one `tuneforge serve` per database ({dbs}), its own local Ray with 2 CPUs, "
        f"auth on (the admin key), default settings; client and server on one machine over "
        f"loopback. At once: {o.studies} `POST /api/v1/studies` fired together from one "
        f"`httpx.AsyncClient` (the quickstart's digits MLP, `examples/digits-mlp.yaml`, with "
        f"a budget of {o.trials} trials of {o.epochs} epochs, parallelism 1, a unique name "
        f"each: {o.studies * o.trials} trials for 2 CPUs), and for {o.seconds:g} s polls at "
        f"a fixed open-loop rate of {o.rate:g} requests/s from {o.clients} client tasks: "
        f"`GET /api/v1/studies/{{id}}` and `GET /api/v1/studies/{{id}}/trials` alternately, "
        f"of a random study among those created so far (`GET /api/v1/studies` until the "
        f"first exists); the client lets idle connections expire after {KEEPALIVE_S:g} s, "
        f"before uvicorn's 5 s keep-alive timeout. Then it waits for every study to finish "
        f"and reads them back.",
        "- Measured: latency from each request's *planned* start (poll k is planned at "
        "k / rate s; a client that falls behind sends at once), so a stall shows up as "
        "latency and is not hidden by sending fewer requests (coordinated omission); the last "
        "column gives the p99 from the actual send, what a closed-loop client would report. "
        "Errors: any non-2xx answer or transport error, submissions and polls. Studies lost: "
        "answered 201 but missing from `GET /api/v1/studies`, listed twice, or not "
        "`completed`; any study listed that was not created counts too. Trials lost: a study "
        f"whose trials are not exactly {o.trials} COMPLETE (none RUNNING, FAIL or missing), "
        "read through the API and again from Optuna's tables with `optuna.load_study` "
        "after the server stopped. The issue sets no latency goal; p50 / p99 are reported.",
        "",
        figures_table(outs),
        "",
        latency_table(outs),
        "",
    ]
    goals = all(
        x.errors() == 0
        and not x.studies_lost
        and len(x.created) == x.studies
        and not x.trials_lost
        and not x.db_trials_lost
        and x.db_checked
        for x in outs
    )
    reading = "Goals (0 errors, 0 studies lost, 0 trials lost): " + (
        "**met**" if goals else "**NOT met**"
    )
    reading += f" ({', '.join(x.database for x in outs)}). "
    for x in outs:
        lat = [s.latency for s in x.polls]
        reading += (
            f"{x.database}: {len(x.polls)} polls in {x.poll_wall_s:.1f} s, p50 "
            f"{_ms(percentile(lat, 50))} ms, p99 {_ms(percentile(lat, 99))} ms while the "
            f"{x.studies} submissions landed (POST p99 "
            f"{_ms(percentile([s.latency for s in x.submissions], 99))} ms) and the 2 CPUs "
            f"also ran trials ({x.trials_in_window} completed inside the planned "
            f"{x.seconds:g} s, {x.trials_while_polled} before the last poll's answer); "
            f"every study finished {x.waited_s:.0f} s after the polling ended. "
        )
        if x.trials_complete and x.trials_while_polled < 0.5 * x.trials_complete:
            reading += (
                f"Trials starved while the API was saturated: {x.trials_while_polled} of "
                f"{x.trials_complete} completed before the polls stopped, the other "
                f"{x.trials_complete - x.trials_while_polled} in the "
                f"{(x.all_done_s or 0) - x.poll_wall_s:.0f} s after (the scheduler is a "
                "thread of the server's Python process, beside the API's threads). "
            )
        achieved = len(x.polls) / x.poll_wall_s if x.poll_wall_s else 0.0
        if achieved < 0.95 * x.rate:
            window = x.poll_wall_s or 1.0
            reading += (
                f"The server did not keep up with {x.rate:g} requests/s: it answered "
                f"{achieved:.0f} requests/s on average, so the requests queued and the "
                f"latency from the planned start grew with the backlog (from the actual send, "
                f"p99 {_ms(percentile([s.service for s in x.polls], 99))} ms with "
                f"{x.clients} requests in flight); its process used "
                f"{x.cpu_server_s / window:.2f} CPUs meanwhile (one Python process: API and "
                f"scheduler share one interpreter), its Ray and trials "
                f"{x.cpu_ray_s / window:.2f}, this client {x.cpu_client_s / window:.2f}. "
            )
    if busy:
        reading += (
            "The machine was not idle: other processes (not this benchmark, its server or "
            "their Ray) used "
            + ", ".join(f"{x.foreign_cpu_s:.1f} CPU-s during the {x.database} run" for x in busy)
            + " (/proc sampled twice a second); latencies are inflated by that much CPU "
            "taken from 2 cores. "
        )
    else:
        reading += "No other process used noticeable CPU meanwhile (/proc sampled twice a second). "
    pool = [x.database for x in outs if any("QueuePool limit" in p for p in x.log_problems)]
    if pool:
        reading += (
            f"The errors ({', '.join(pool)}) are SQLAlchemy's pool timeout (QueuePool of 5 + 10 "
            "overflow connections, 30 s) in the API-key lookup (`service/auth.py` "
            "`caller_for`, from the `_caller` dependency): with more requests in flight than "
            "the 40 threads of FastAPI's threadpool, every thread blocks in the pool waiting "
            "for a connection while the 15 connections are held by requests (the Session "
            "their `_caller` used) that wait for a thread for their next sync step; nothing "
            "moves until the 30 s checkout timeout answers 500 (a py-spy dump 8 s into a "
            "reproduction, 50 POSTs and 32 looping `GET /studies`: 40 of 40 threadpool "
            "threads in `QueuePool._do_get` under `caller_for`, the scheduler thread in the "
            "same wait in `crud.active_studies`). 50 POSTs alone (no polling) all pass in "
            "1.5 s. "
        )
    for x in outs:
        samples = x.submissions + x.polls
        fives = sorted(t.done for t in samples if t.status is not None and t.status >= 500)
        transport = [t for t in samples if t.status is None]
        after = [t for t in transport if any(t.sent - 1.0 <= d <= t.sent for d in fives)]
        if after:
            reading += (
                f"{x.database}: {len(after)} of the {len(transport)} transport errors "
                "(ReadError: the connection closed without an answer) were sent within 1 s "
                "after a 500: consistent with uvicorn closing the connection after an "
                "unhandled exception although its 500 carries no `Connection: close`, so the "
                "client may reuse a closing connection. "
            )
    notes = [line for x in outs for line in problems(x)]
    lines.append(reading.rstrip())
    if notes:
        lines += ["", "Notes:", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--studies", type=int, default=50, help="concurrent submissions (50)")
    parser.add_argument("--trials", type=int, default=3, help="trials per study (3)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial (2)")
    parser.add_argument("--seconds", type=float, default=60.0, help="polling time (60 s)")
    parser.add_argument("--rate", type=float, default=200.0, help="polls per second (200)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent poll tasks (32)")
    parser.add_argument(
        "--max-wait", type=float, default=600.0, help="longest wait for the studies (600 s)"
    )
    parser.add_argument(
        "--max-poll-s",
        type=float,
        default=300.0,
        help="send no poll after this many seconds, even if the server fell behind (300 s)",
    )
    parser.add_argument(
        "--wait-idle", type=float, default=300, help="longest wait for a quiet machine (300 s)"
    )
    parser.add_argument("--keep-log", type=Path, default=None, help="copy the server log here")
    parser.add_argument("--write", action="store_true", help=f"rewrite its section of {RESULTS}")
    args = parser.parse_args()

    os.chdir(ROOT)
    print(machine())
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    outs = []
    for kind in kinds:
        args.database = kind
        out = run(args)
        outs.append(out)
        print(f"{kind}: done in {out.wall_s:.0f} s")
    print()
    print(figures_table(outs))
    print()
    print(latency_table(outs))
    for line in (p for o in outs for p in problems(o)):
        print(line)
    if args.write:
        # --keep-log only copies the server's log: leave it out of the recorded command.
        argv, skip = [], False
        for arg in sys.argv[1:]:
            if skip or arg == "--keep-log":
                skip = not skip
                continue
            if not arg.startswith("--keep-log="):
                argv.append(arg)
        command = "cd /work/main && .venv/bin/python benchmarks/load.py " + " ".join(argv)
        write_section(SECTION, section(outs, command.rstrip()))
        print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
