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
    .venv/bin/python benchmarks/darts_vs_search.py --write    # also rewrite its RESULTS.md section
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from benchmarks.results import RESULTS, machine_line, write_section  # noqa: E402

SECTION = "## DARTS against a multi-trial search of the cell space (digits)"
EPOCHS = 8  # training of every cell, DARTS's derived one included
SEARCH_EPOCHS = 8  # DARTS supernet epochs
BUDGET_S = 240.0  # the multi-trial search's time budget
ARCHITECTURE = {"kind": "cell", "channels": 8, "cells_per_stage": 1, "stages": 3}
TASK = {"dataset": {"name": "digits"}, "training": {"epochs": EPOCHS, "lr": 3e-3}}


@dataclass
class Result:
    system: str
    seed: int
    seconds: float  # wall time to a cell at least as accurate as DARTS's (inf: not reached)
    accuracy: float | None  # best validation accuracy found
    trials: int
    genotype: str | None


def _wait(api: httpx.Client, study_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = api.get(f"/studies/{study_id}").raise_for_status().json()
        if study["status"] in ("completed", "failed", "stopped"):
            return dict(study)
        time.sleep(0.2)
    raise TimeoutError(f"study {study_id} did not finish in {timeout:.0f} s")


def _ts(value: str) -> float:
    t = dt.datetime.fromisoformat(value)
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


def _trials(api: httpx.Client, study_id: int) -> list[dict[str, Any]]:
    got = api.get(f"/studies/{study_id}/trials", params={"limit": 1000}).raise_for_status()
    return list(got.json()["items"])


def run_darts(api: httpx.Client, seed: int) -> Result:
    body = {
        "name": f"darts-s{seed}",
        "algorithm": {"name": "darts", "settings": {"epochs": SEARCH_EPOCHS}},
        "architecture": ARCHITECTURE,
        "task": TASK,
        "seed": seed,
    }
    t0 = time.time()
    study_id = api.post("/studies", json=body).raise_for_status().json()["id"]
    study = _wait(api, study_id, 600)
    (trial,) = _trials(api, study_id)
    if trial["state"] != "COMPLETE":
        raise RuntimeError(f"the DARTS trial ended {trial['state']}: {trial['fail_reason']}")
    return Result(
        "darts",
        seed,
        _ts(study["finished_at"]) - t0,
        trial["value"],
        1,
        trial["user_attrs"].get("genotype"),
    )


def run_search(api: httpx.Client, algorithm: str, seed: int, target: float) -> Result:
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
    _wait(api, study_id, BUDGET_S + 300)
    trials = [t for t in _trials(api, study_id) if t["state"] == "COMPLETE"]
    reached = [_ts(t["datetime_complete"]) - t0 for t in trials if t["value"] >= target]
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
    from tests.conftest import start_server

    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = start_server(f"sqlite:///{workdir / 'tuneforge.db'}", workdir / "data")
        try:
            with server.api as api:
                for seed in seeds:
                    darts = run_darts(api, seed)
                    results.append(darts)
                    print(f"  seed {seed} darts : {darts.seconds:.1f} s, {darts.accuracy:.4f}")
                    assert darts.accuracy is not None
                    for algorithm in ("random", "tpe"):
                        found = run_search(api, algorithm, seed, darts.accuracy)
                        results.append(found)
                        print(
                            f"  seed {seed} {algorithm:6}: {found.seconds:.1f} s to "
                            f">= {darts.accuracy:.4f} ({found.trials} trials)"
                        )
        finally:
            server.stop()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server.process.pid, signal.SIGKILL)
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


def reading(results: list[Result]) -> str:
    darts = _median([r.seconds for r in results if r.system == "darts"])
    parts = []
    for system in ("random", "tpe"):
        other = _median([r.seconds for r in results if r.system == system])
        ratio = "n/a" if other == float("inf") else f"{other / darts:.2f}"
        parts.append(f"{system} took {_fmt(other)} s, {ratio} x DARTS's {darts:.1f} s")
    genotypes = ", ".join(f"`{r.genotype}`" for r in results if r.system == "darts")
    searches = [r for r in results if r.system != "darts"]
    if searches and all(r.trials <= 2 and r.seconds < darts for r in searches):
        parts.append(
            "every multi-trial search matched DARTS with its first one or two cells: on digits "
            "most cells of this space reach that accuracy, so DARTS's search cost (a supernet "
            "of every operation) cannot pay off; it is the better deal where a trained cell "
            "costs far more than a supernet epoch"
        )
    return (
        "Reading: to a cell at least as accurate as DARTS's derived cell, "
        + "; ".join(parts)
        + f" (medians). DARTS's cells: {genotypes}. DARTS's time includes its supernet "
        f"search ({SEARCH_EPOCHS} epochs) and the {EPOCHS}-epoch training of the derived cell; "
        "the multi-trial searches train each cell as long, two at a time."
    )


def section(results: list[Result], command: str, seeds: list[int]) -> str:
    import importlib.metadata as md

    versions = ", ".join(f"{p} {md.version(p)}" for p in ("ray", "optuna", "torch"))
    return "\n".join(
        [
            SECTION,
            "",
            f"- Date: {dt.date.today().isoformat()}",
            f"- Machine: {machine_line(versions)}",
            f"- Command: `{command}`",
            f"- Setup: one `tuneforge serve` (SQLite, local Ray, 2 CPUs); the NAS-Bench-201 "
            f"cell space (5 operations on each of 6 edges: 15,625 cells), network "
            f"{ARCHITECTURE['channels']} channels, {ARCHITECTURE['cells_per_stage']} cell a "
            f"stage, {ARCHITECTURE['stages']} stages, on digits (validation split seed 0); "
            f"every cell trains {EPOCHS} epochs (Adam, lr 3e-3). DARTS: `algorithm: darts`, "
            f"{SEARCH_EPOCHS} supernet epochs, one trial. Multi-trial: `random` and `tpe`, "
            f"2 trials in parallel, `target_value` = DARTS's accuracy for the seed, "
            f"{BUDGET_S:.0f} s budget. Seeds {', '.join(map(str, seeds))}.",
            "",
            table(results),
            "",
            reading(results),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed")
    parser.add_argument("--write", action="store_true", help=f"rewrite its section of {RESULTS}")
    args = parser.parse_args()
    seeds = [0] if args.quick else [0, 1, 2]
    results = measure(seeds)
    print()
    print(table(results))
    print()
    print(reading(results))
    if args.write:
        command = ".venv/bin/python benchmarks/darts_vs_search.py " + " ".join(sys.argv[1:])
        write_section(SECTION, section(results, command.rstrip(), seeds))
        print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
