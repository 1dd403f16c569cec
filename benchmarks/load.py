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
    .venv/bin/python benchmarks/load.py --database both --write # both, into its RESULTS.md block
    .venv/bin/python benchmarks/load.py --seconds 10 --studies 10   # a smoke run (~1 min)
    .venv/bin/python benchmarks/load.py --topology cluster --write  # 2 APIs, 2 schedulers,
                                                                    # 2 tenants, PostgreSQL

``--topology cluster`` runs the service as a team does (``benchmarks/api_load/cluster.py``):
a Ray head, two API processes and two scheduler replicas on PostgreSQL, two tenants (A submits
``--studies``, B a fifth as many), and reports errors, studies and trials lost, and each
tenant's share of the cluster while both had work.

The server answers fewer than 200 polls/s on 2 cores, so the polls queue and take longer than
``--seconds`` to send; ``--max-poll-s`` (300) caps that, ``--max-wait`` (600) the wait for the
studies, and the server is always stopped (SIGTERM, then SIGKILL for its process group).
The load is in ``benchmarks/api_load/traffic.py``, the checks after it in ``checks.py``, the
report in ``report.py``.
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

if not __package__:  # run as `python benchmarks/load.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx

from benchmarks.api_load.checks import check_database, log_problems, wait_and_check
from benchmarks.api_load.report import report
from benchmarks.api_load.traffic import Outcome, load
from benchmarks.harness import (
    LOOPBACK_RAY,
    RESULTS,
    ROOT,
    ForeignLoad,
    Server,
    command_line,
    cpu_used,
    database,
    log,
    publish,
    start_server,
    tree_cpu,
    wait_idle,
)

HEADING = "## API under load: concurrent submissions and polling (loopback)"
BLOCK = "benchmarks/load.py"
CLUSTER_HEADING = "## A team's cluster under load: two APIs, two schedulers, two tenants"
CLUSTER_BLOCK = "benchmarks/load.py (cluster)"


def run(args: argparse.Namespace) -> Outcome:
    """One run on a fresh server and database: the load, the wait, the checks."""
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
            if args.wait_idle > 0:
                wait_idle(args.wait_idle)
            server = start_server(url, workdir / "data", env=LOOPBACK_RAY, cwd=ROOT)
            out.startup_s = server.startup_s
            log(f"server ready in {server.startup_s:.1f} s at {server.url} ({args.database})")
            key = server.key
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
                log(
                    f"load done: {len(out.submissions)} submissions, {len(out.polls)} polls "
                    f"in {out.poll_wall_s:.1f} s, {out.errors()} errors; waiting for the studies"
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
            server.stop(group=True)
            out.log_problems = log_problems(server.log())
            check_database(url, out, optuna_names)
    except Exception as exc:  # report what was measured so far
        failed = f"run failed: {type(exc).__name__}: {exc}"
        out.note = f"{out.note}; {failed}" if out.note else failed
    finally:
        if server is not None:
            server.stop(group=True)
            if not out.log_problems:
                out.log_problems = log_problems(server.log())
            if args.keep_log:
                shutil.copy(server.log_path, args.keep_log)
        shutil.rmtree(workdir, ignore_errors=True)
    out.wall_s = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    parser.add_argument("--topology", choices=("single", "cluster"), default="single")
    args = parser.parse_args()
    if args.topology == "cluster":
        cluster_main(args)
        return

    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    outs = []
    for kind in kinds:
        args.database = kind
        out = run(args)
        outs.append(out)
        log(f"{kind}: done in {out.wall_s:.0f} s")
    # --keep-log only copies the server's log: leave it out of the recorded command.
    text = report(outs, command_line(omit=["--keep-log"]))
    publish(text, BLOCK, HEADING, args.write)


def cluster_main(args: argparse.Namespace) -> None:
    from benchmarks.api_load.cluster import report_rows, run_cluster
    from benchmarks.harness import report_head, versions

    if args.wait_idle > 0:
        wait_idle(args.wait_idle)
    out = run_cluster(args.studies, args.trials, args.epochs, args.seconds, args.rate)
    lines = [report_head(versions("ray", "optuna", "sqlalchemy", "psycopg"))]
    lines += ["", "| figure | postgresql |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in report_rows(out)]
    if out.note or out.errors or out.studies_lost or out.trials_lost:
        lines += ["", f"Note: {out.note}", *out.errors[:5], *out.studies_lost[:5]]
        lines += out.trials_lost[:5]
    publish("\n".join(lines) + "\n", CLUSTER_BLOCK, CLUSTER_HEADING, args.write)


if __name__ == "__main__":
    main()
