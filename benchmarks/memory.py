"""Memory: the scheduler's resident memory with 20 studies running, and its growth per 1,000
finished trials.

One ``tuneforge serve`` (embedded default: SQLite, local Ray with 2 CPUs; the scheduler runs
in the server's process, so the figure is the API's and the scheduler's together, an upper
bound of the scheduler's alone) gets ``--studies`` (20) studies at once, each of
``--trials`` (400) no-op function trials, one at a time, random search over one float: 20
studies open in the scheduler, 2 trials running at a time (2 CPUs), the rest queued in Ray.
Every second it reads the server process's resident memory (VmRSS in /proc) and the number of
finished trials (``GET /api/v1/studies``). It reports the resident memory once every study is
running, at the end, and the growth per 1,000 finished trials: the least-squares slope of
resident memory against finished trials over the second half of the run (after start-up and
caches have settled).

Usage::

    .venv/bin/python benchmarks/memory.py --write              # ~4 min on 2 cores (its block)
    .venv/bin/python benchmarks/memory.py --trials 50          # a smoke run
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as `python benchmarks/memory.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks.harness import RESULTS, noop_study, publish, report_head, serve

HEADING = "## Memory: the scheduler with 20 studies running"
BLOCK = "benchmarks/memory.py"
# The service's default poll, not the tests' 0.2 s; workers warmed (the service's default).
SERVER_ENV = {"TUNEFORGE_SCHEDULER_POLL_S": "0.5"}


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of y against x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    args = parser.parse_args()
    total = args.studies * args.trials
    samples: list[tuple[float, int, int, float]] = []  # (t, finished, running studies, MiB)
    with (
        tempfile.TemporaryDirectory(prefix="tf-memory-") as tmp,
        serve(f"sqlite:///{Path(tmp) / 'tuneforge.db'}", Path(tmp), SERVER_ENV) as server,
    ):
        pid = server.process.pid
        api = server.api
        idle_mib = rss_mib(pid)
        for i in range(args.studies):
            spec = noop_study(f"memory-{i}", args.trials, parallelism=1)
            api.post("/studies", json=spec).raise_for_status()
        t0 = time.time()
        while True:
            page = api.get("/studies", params={"limit": 100}).raise_for_status().json()
            studies = page["items"]
            finished = sum(
                sum(s["trial_counts"][k] for k in ("COMPLETE", "FAIL", "PRUNED")) for s in studies
            )
            running = sum(s["status"] == "running" for s in studies)
            samples.append((time.time() - t0, finished, running, rss_mib(pid)))
            if all(s["status"] in ("completed", "failed", "stopped") for s in studies):
                break
            time.sleep(1.0)
        assert all(s["status"] == "completed" for s in studies), studies
        assert finished == total, finished
    all_running = next((s for s in samples if s[2] == args.studies), samples[0])
    peak = max(s[3] for s in samples)
    late = [(f, m) for _, f, _, m in samples if f >= total // 2]
    growth = 1000 * slope(late)
    text = "\n".join(
        [
            report_head(
                "SQLite, local Ray with 2 CPUs",
                f"{args.studies} studies of {args.trials} no-op trials each ({total:,} in all), "
                "submitted at once to one `tuneforge serve`; the server process's VmRSS (API "
                "and scheduler) sampled every second (see the docstring).",
            ),
            "",
            "| idle server (MiB) | all studies running (MiB) | peak (MiB) | at the end (MiB) "
            "| growth per 1,000 finished trials (MiB) | run (s) |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {idle_mib:.0f} | {all_running[3]:.0f} (after {all_running[1]} trials) "
            f"| {peak:.0f} | {samples[-1][3]:.0f} | {growth:.2f} | {samples[-1][0]:.0f} |",
        ]
    )
    publish(text, BLOCK, HEADING, args.write)


if __name__ == "__main__":
    main()
