"""External trials' overhead: what the service costs per trial when the client's objective
costs nothing, against Optuna's own ask/tell on the same database, in the same run.

Each system evaluates ``--trials`` (200) trials of a no-op objective, one at a time, in this
process: two float parameters drawn by ``--sampler`` (random: the loop's own cost; tpe: the
sampler's cost too, which grows with the trials), one intermediate report, then the outcome.

- **tuneforge**: an external study (``task: {kind: external}``) on one ``tuneforge serve``
  (its own local Ray, started and warmed outside the clock) over loopback; the Python
  client's ``client.study(id).optimize(objective, n_trials)``, whose objective reports once
  (``trial.report``, which answers the pruning decision) and returns 0: per trial, an ask, a
  report and a tell over HTTP, the sampler run in the API process, the lease written.
- **optuna**: ``study.ask()``, ``suggest_float`` twice, ``trial.report``, ``study.tell`` on a
  study in the same database file (SQLite; ``--database postgresql``: a schema of the local
  PostgreSQL) that the server uses.

Per-trial overhead = the loop's wall time / trials. Each system runs ``--repeats`` (3) times
after a 20-trial warm-up; the table gives the median (min-max) and the ratio of the medians.

Usage::

    .venv/bin/python benchmarks/external.py --write              # ~3 min on 2 cores (its block)
    .venv/bin/python benchmarks/external.py --sampler tpe --write
    .venv/bin/python benchmarks/external.py --trials 40 --repeats 1   # a smoke run
"""

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as `python benchmarks/external.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import optuna

from benchmarks.harness import RESULTS, Server, database, log, publish, report_head, serve, versions
from service.client import Client
from service.client.external import ExternalTrial

HEADING = "## External trials: the ask/tell loop over REST against Optuna's own"
BLOCK = "benchmarks/external.py random sqlite"
TPE_BLOCK = "benchmarks/external.py tpe sqlite"
POSTGRES_BLOCK = "benchmarks/external.py random postgresql"
BLOCKS = {("random", "sqlite"): BLOCK, ("tpe", "sqlite"): TPE_BLOCK}
BLOCKS[("random", "postgresql")] = POSTGRES_BLOCK  # RESULTS.md holds these three
SERVER_ENV = {"TUNEFORGE_SCHEDULER_POLL_S": "0.5"}
SAMPLERS = {"random": {"seed": 0}, "tpe": {"seed": 0, "n_startup_trials": 10}}


def study_spec(name: str, trials: int, sampler: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": {"kind": "external", "metrics": ["loss"]},
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": {"name": sampler, "settings": SAMPLERS[sampler]},
        "search_space": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "y": {"type": "float", "low": 0.0, "high": 1.0},
        },
        "budget": {"max_trials": trials},
        "parallelism": 1,
    }


def noop(trial: ExternalTrial) -> float:
    trial.report(0.0, 1)
    return 0.0


def run_tuneforge(server: Server, name: str, trials: int, sampler: str) -> float:
    """One external study's loop; its wall time."""
    with Client(server.url, server.key) as client:
        created = client.submit(study_spec(name, trials, sampler))
        study = client.study(created["id"])
        t0 = time.perf_counter()
        outcomes = study.optimize(noop, n_trials=trials)
        wall = time.perf_counter() - t0
    if [o.state for o in outcomes] != ["complete"] * trials:
        raise RuntimeError(f"tuneforge: not every trial completed: {outcomes[:3]}...")
    return wall


def run_optuna(url: str, name: str, trials: int, sampler: str) -> float:
    """Optuna's ask/tell loop on the same database; its wall time."""
    made: optuna.samplers.BaseSampler = (
        optuna.samplers.RandomSampler(seed=0)
        if sampler == "random"
        else optuna.samplers.TPESampler(seed=0, n_startup_trials=10)  # as SAMPLERS["tpe"]
    )
    study = optuna.create_study(study_name=name, storage=url, sampler=made)
    t0 = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.suggest_float("y", 0.0, 1.0)
        trial.report(0.0, 1)
        study.tell(trial, 0.0)
    wall = time.perf_counter() - t0
    assert len(study.get_trials(deepcopy=False)) == trials
    return wall


def measure(kind: str, trials: int, repeats: int, sampler: str) -> dict[str, list[float]]:
    """Each system's per-trial milliseconds, one a repeat, on one database."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found: dict[str, list[float]] = {"tuneforge": [], "optuna": []}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = stack.enter_context(database(kind, tmp))
        server = stack.enter_context(serve(url, tmp / "data", SERVER_ENV))
        run_tuneforge(server, "warm-up", 20, sampler)
        run_optuna(url, "warm-up", 20, sampler)
        for i in range(repeats):  # interleaved: a slow moment of the machine hits both
            wall = run_tuneforge(server, f"noop-{i}", trials, sampler)
            found["tuneforge"].append(1000 * wall / trials)
            wall = run_optuna(url, f"optuna-noop-{i}", trials, sampler)
            found["optuna"].append(1000 * wall / trials)
            log(f"  repeat {i}: " + ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in found.items()))
    return found


def report(found: dict[str, list[float]], kind: str, trials: int, sampler: str) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    ratio = statistics.median(found["tuneforge"]) / statistics.median(found["optuna"])
    method = (
        f"{trials} no-op trials one at a time, {sampler} over 2 floats, one report each, "
        f"{len(found['optuna'])} repeats after a 20-trial warm-up, on {kind}"
    )
    lines = [
        report_head(versions("optuna", "fastapi", "sqlalchemy"), method),
        "",
        "| system | ms per trial, median (min-max) |",
        "|---|---:|",
        f"| tuneforge (ask, report, tell over HTTP) | {cell(found['tuneforge'])} |",
        f"| optuna (ask, report, tell in process) | {cell(found['optuna'])} |",
        "",
        f"Ratio tuneforge / optuna: {ratio:.2f}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200, help="trials a repeat (200)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats a system (3)")
    parser.add_argument("--sampler", choices=list(SAMPLERS), default="random")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    args = parser.parse_args()
    block = BLOCKS.get((args.sampler, args.database))
    if args.write and block is None:
        parser.error(f"RESULTS.md holds no block for {args.sampler} on {args.database}")
    found = measure(args.database, args.trials, args.repeats, args.sampler)
    text = report(found, args.database, args.trials, args.sampler)
    publish(text, block or BLOCK, HEADING, args.write)


if __name__ == "__main__":
    main()
