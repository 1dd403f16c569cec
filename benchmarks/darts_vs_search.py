"""DARTS against a multi-trial search of the same cell space, through the service, on digits.

One ``tuneforge serve`` (SQLite, local Ray, 2 CPUs) gets, per seed:

1. a DARTS study (``algorithm: darts``): one trial searches the NAS-Bench-201 cell space with a
   supernet, derives the cell and trains it; its wall time (POST to study completed) and the
   derived cell's validation accuracy A are recorded;
2. a multi-trial study of the same space (``random``, then ``tpe``: two trials in parallel,
   each cell trained as long as DARTS trained its derived cell), with ``target_value`` A, so
   it ends when one of its cells reaches DARTS's accuracy, or at the time budget.

The figure is each search's wall time to a cell at least as accurate as DARTS's, median over
the seeds, and their ratio. The cell network (8 channels, one cell a stage, 3 stages) and the
training (Adam, lr 3e-3, ``EPOCHS`` epochs) are the same everywhere.

Usage::

    .venv/bin/python benchmarks/darts_vs_search.py            # 3 seeds (~6 min on 2 cores)
    .venv/bin/python benchmarks/darts_vs_search.py --quick    # 1 seed
    .venv/bin/python benchmarks/darts_vs_search.py --write    # also rewrite its RESULTS.md block
"""

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as `python benchmarks/darts_vs_search.py`: import from the repository
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx

from benchmarks.harness import (
    RESULTS,
    all_trials,
    log,
    publish,
    report_head,
    serve,
    ts,
    versions,
    wait_study,
)

HEADING = "## DARTS against a multi-trial search of the cell space (digits)"
BLOCK = "benchmarks/darts_vs_search.py"
EPOCHS = 8  # training of every cell, DARTS's derived one included
SEARCH_EPOCHS = 8  # DARTS supernet epochs
BUDGET_S = 240.0  # the multi-trial search's time budget
ARCHITECTURE = {"kind": "cell", "channels": 8, "cells_per_stage": 1, "stages": 3}
TASK = {"dataset": {"name": "digits"}, "training": {"epochs": EPOCHS, "lr": 3e-3}}
# As measured (the test suite's server settings then): the scheduler rereads the studies every
# 0.2 s; workers warmed (the service's default).
SERVER_ENV = {"TUNEFORGE_SCHEDULER_POLL_S": "0.2"}


@dataclass
class Result:
    system: str
    seed: int
    seconds: float  # wall time to a cell at least as accurate as DARTS's (inf: not reached)
    accuracy: float | None  # best validation accuracy found
    trials: int
    genotype: str | None


def run_darts(api: httpx.Client, seed: int) -> Result:
    """One DARTS study: its wall time (POST to study finished) and its derived cell."""
    body = {
        "name": f"darts-s{seed}",
        "algorithm": {"name": "darts", "settings": {"epochs": SEARCH_EPOCHS}},
        "architecture": ARCHITECTURE,
        "task": TASK,
        "seed": seed,
    }
    t0 = time.time()
    study_id = api.post("/studies", json=body).raise_for_status().json()["id"]
    study = wait_study(api, study_id, poll_s=0.2, timeout=600)
    (trial,) = all_trials(api, study_id)
    if trial["state"] != "COMPLETE":
        raise RuntimeError(f"the DARTS trial ended {trial['state']}: {trial['fail_reason']}")
    return Result(
        "darts",
        seed,
        (ts(study["finished_at"]) or t0) - t0,
        trial["value"],
        1,
        trial["user_attrs"].get("genotype"),
    )


def run_search(api: httpx.Client, algorithm: str, seed: int, target: float) -> Result:
    """A multi-trial study that ends at a cell as accurate as ``target``: when it got one."""
    body = {
        "name": f"{algorithm}-s{seed}",
        "algorithm": {"name": algorithm, "settings": {"seed": seed}},
        "architecture": ARCHITECTURE,
        "budget": {"max_trials": 10_000, "timeout_s": BUDGET_S, "target_value": target},
        "parallelism": 2,
        "task": TASK,
        "seed": seed,
    }
    t0 = time.time()
    study_id = api.post("/studies", json=body).raise_for_status().json()["id"]
    wait_study(api, study_id, poll_s=0.2, timeout=BUDGET_S + 300)
    trials = [t for t in all_trials(api, study_id) if t["state"] == "COMPLETE"]
    reached = [(ts(t["datetime_complete"]) or t0) - t0 for t in trials if t["value"] >= target]
    best = max(trials, key=lambda t: t["value"], default=None)
    return Result(
        algorithm,
        seed,
        min(reached, default=float("inf")),
        None if best is None else best["value"],
        len(trials),
        None if best is None else best["user_attrs"].get("genotype"),
    )


def measure(seeds: list[int]) -> list[Result]:
    """Per seed: DARTS, then random and tpe to DARTS's accuracy, on one server."""
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(f"sqlite:///{Path(tmp) / 'tuneforge.db'}", Path(tmp) / "data", SERVER_ENV) as server,
        server.api as api,
    ):
        for seed in seeds:
            darts = run_darts(api, seed)
            results.append(darts)
            assert darts.accuracy is not None
            log(f"  seed {seed} darts : {darts.seconds:.1f} s, {darts.accuracy:.4f}")
            for algorithm in ("random", "tpe"):
                found = run_search(api, algorithm, seed, darts.accuracy)
                results.append(found)
                log(
                    f"  seed {seed} {algorithm:6}: {found.seconds:.1f} s to "
                    f">= {darts.accuracy:.4f} ({found.trials} trials)"
                )
    return results


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _fmt(seconds: float) -> str:
    return "not reached" if seconds == float("inf") else f"{seconds:.1f}"


def table(results: list[Result]) -> str:
    lines = [
        "| search | wall time to a cell as accurate as DARTS's, s: median (per seed) "
        "| best val_accuracy: median (per seed) | cells trained: median |",
        "|---|---:|---:|---:|",
    ]
    for system in ("darts", "random", "tpe"):
        rows = [r for r in results if r.system == system]
        times = [r.seconds for r in rows]
        accs = [r.accuracy or 0.0 for r in rows]
        lines.append(
            f"| {system} | {_fmt(_median(times))} ({', '.join(_fmt(t) for t in times)}) "
            f"| {_median(accs):.4f} ({', '.join(f'{a:.4f}' for a in accs)}) "
            f"| {_median([float(r.trials) for r in rows]):.0f} |"
        )
    return "\n".join(lines)


def report(results: list[Result], seeds: list[int]) -> str:
    """Head lines, the table, the ratios to DARTS and DARTS's cells."""
    darts = _median([r.seconds for r in results if r.system == "darts"])
    ratios = []
    for system in ("random", "tpe"):
        other = _median([r.seconds for r in results if r.system == system])
        ratios.append(f"{system} {'n/a' if other == float('inf') else f'{other / darts:.2f}'}")
    cells = [f"| {r.seed} | `{r.genotype}` |" for r in results if r.system == "darts"]
    return "\n".join(
        [
            report_head(
                versions("ray", "optuna", "torch"),
                f"seeds {', '.join(map(str, seeds))}; every cell trains {EPOCHS} epochs; DARTS "
                f"{SEARCH_EPOCHS} supernet epochs; multi-trial: 2 trials in parallel, "
                f"`target_value` = DARTS's accuracy, {BUDGET_S:.0f} s budget.",
            ),
            "",
            table(results),
            "",
            "Wall time to a cell as accurate as DARTS's / DARTS's (medians): "
            + ", ".join(ratios)
            + ".",
            "",
            "| seed | DARTS's cell |",
            "|---:|---|",
            *cells,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed")
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    args = parser.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    publish(report(measure(seeds), seeds), BLOCK, HEADING, args.write)


if __name__ == "__main__":
    main()
