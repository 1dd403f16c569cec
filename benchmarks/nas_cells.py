"""Architecture strategies on a real cell search: the NAS-Bench-201 cell on digits, trained.

The synthetic table of ``benchmarks/nas_regret.py`` costs nothing to evaluate; this is the same
comparison with every architecture really trained. One ``tuneforge serve`` (SQLite, local Ray,
2 CPUs) gets, per seed and strategy, a study of the cell space (5 operations on each of 6 edges:
15,625 cells; network 8 channels, one cell a stage, 3 stages) on digits, ``--trials`` trials
two at a time, each cell trained ``--epochs`` epochs (Adam, lr 3e-3; few epochs, so that cells
differ more than on a fully trained digits task). The optimum is unknown: the regret of a study
after n trials is the best validation accuracy that any study of the run found, minus the best
among its own first n trials (by trial number). The table gives each strategy's mean (median)
regret and its mean as a fraction of TPE's (issue 18 asks at most 0.7 at 100 trials over at
least 20 seeds).

Usage::

    .venv/bin/python benchmarks/nas_cells.py                      # 20 seeds x 100 trials (hours)
    .venv/bin/python benchmarks/nas_cells.py --seeds 3 --trials 30   # reduced (~15 min)
    .venv/bin/python benchmarks/nas_cells.py --write      # also rewrite its RESULTS.md block
    .venv/bin/python benchmarks/nas_cells.py --json runs.json   # resumable: see below
    .venv/bin/python benchmarks/nas_cells.py --json runs.json --strategies predictor tpe  # some

A full run takes hours on 2 CPUs: with ``--json FILE`` every finished study is saved to FILE at
once, and a later run with the same FILE (and the same ``--trials`` and ``--epochs``) skips the
studies it holds, so the run can be done in parts; ``--report`` prints (``--write``: publishes)
what FILE holds without running anything.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

if not __package__:  # run as `python benchmarks/nas_cells.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx

from benchmarks.harness import (
    RESULTS,
    all_trials,
    log,
    publish,
    report_head,
    serve,
    versions,
    wait_study,
)

HEADING = "## Architecture strategies on a real cell search (digits)"
BLOCK = "benchmarks/nas_cells.py"
STRATEGIES = ("local_search", "predictor", "tpe", "random")
ARCHITECTURE = {"kind": "cell", "channels": 8, "cells_per_stage": 1, "stages": 3}
SERVER_ENV = {"TUNEFORGE_SCHEDULER_POLL_S": "0.2"}


def run_study(api: httpx.Client, name: str, seed: int, trials: int, epochs: int) -> list[float]:
    """One study; the validation accuracy of its trials by trial number (a failed one: 0)."""
    body = {
        "name": f"{name}-s{seed}",
        "algorithm": {"name": name, "settings": {"seed": seed}},
        "architecture": ARCHITECTURE,
        "budget": {"max_trials": trials},
        "parallelism": 2,
        "task": {"dataset": {"name": "digits"}, "training": {"epochs": epochs, "lr": 3e-3}},
        "seed": seed,
    }
    study_id = api.post("/studies", json=body).raise_for_status().json()["id"]
    wait_study(api, study_id, poll_s=0.5, timeout=60 * trials)
    found = sorted(all_trials(api, study_id), key=lambda t: t["number"])
    return [float(t["value"]) if t["state"] == "COMPLETE" else 0.0 for t in found]


def measure(
    seeds: list[int],
    trials: int,
    epochs: int,
    saved: Path | None = None,
    strategies: Sequence[str] = STRATEGIES,
) -> dict[str, list[list[float]]]:
    """Each strategy's accuracies, one list per seed, on one server; with ``saved``, the
    studies that file holds are not run again and each new one is added to it at once (with
    those of strategies not asked for this time, which it keeps)."""
    done: dict[str, dict[str, list[float]]] = {name: {} for name in STRATEGIES}
    if saved is not None and saved.exists():
        held = json.loads(saved.read_text())
        if (held["trials"], held["epochs"]) != (trials, epochs):
            raise SystemExit(f"{saved} holds {held['trials']} trials x {held['epochs']} epochs")
        for name in STRATEGIES:
            done[name].update(held["found"].get(name, {}))
    todo = [(seed, name) for seed in seeds for name in strategies if str(seed) not in done[name]]
    if todo:
        with (
            tempfile.TemporaryDirectory() as tmp,
            serve(
                f"sqlite:///{Path(tmp) / 'tuneforge.db'}", Path(tmp) / "data", SERVER_ENV
            ) as server,
            server.api as api,
        ):
            for seed, name in todo:
                t0 = time.time()
                values = run_study(api, name, seed, trials, epochs)
                done[name][str(seed)] = values
                log(f"  seed {seed} {name}: best {max(values):.4f} ({time.time() - t0:.0f} s)")
                if saved is not None:
                    body = {"trials": trials, "epochs": epochs, "found": done}
                    saved.write_text(json.dumps(body))
    return {name: [done[name][str(seed)] for seed in seeds] for name in strategies}


def held_seeds(saved: Path, strategies: Sequence[str] = STRATEGIES) -> list[int]:
    """The seeds for which ``saved`` holds a study of every strategy of ``strategies``."""
    found = json.loads(saved.read_text())["found"]
    common = set.intersection(*(set(found.get(name, {})) for name in strategies))
    return sorted(int(seed) for seed in common)


def report(found: dict[str, list[list[float]]], seeds: list[int], trials: int, epochs: int) -> str:
    best = max(max(v) for runs in found.values() for v in runs)
    counts = [n for n in (10, 25, 50, 100, 200) if n < trials] + [trials]

    def regrets(name: str, n: int) -> list[float]:
        return [best - max(v[:n]) for v in found[name]]

    head = "| strategy | " + " | ".join(f"{n} trials" for n in counts) + " |"
    lines = [head, "|---|" + "---:|" * len(counts)]
    for name in found:
        cells = [
            f"{statistics.mean(regrets(name, n)):.4f} ({statistics.median(regrets(name, n)):.4f})"
            for n in counts
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| strategy | " + " | ".join(f"/ tpe's, {n} trials" for n in counts) + " |"]
    lines.append("|---|" + "---:|" * len(counts))
    for name in found:
        if name == "tpe":
            continue
        ratios = []
        for n in counts:
            tpe = statistics.mean(regrets("tpe", n))
            ratios.append(f"{statistics.mean(regrets(name, n)) / tpe:.2f}" if tpe else "n/a")
        lines.append(f"| {name} | " + " | ".join(ratios) + " |")
    method = (
        f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}), {trials} trials, 2 at a time, {epochs} "
        f"epochs a cell; regret = best val_accuracy of the whole run ({best:.4f}) - a study's "
        "best among its first n trials; cells: mean (median)."
    )
    return "\n".join([report_head(versions("optuna", "torch", "ray"), method), "", *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (20)")
    parser.add_argument("--trials", type=int, default=100, help="trials a study (100)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs a cell (2)")
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    parser.add_argument(
        "--json", type=Path, default=None, help="keep every finished study here; resume from it"
    )
    parser.add_argument(
        "--report", action="store_true", help="only report the seeds --json holds in full"
    )
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=STRATEGIES,
        default=list(STRATEGIES),
        help="run (or report) only these, tpe among them (default: all four)",
    )
    args = parser.parse_args()
    if args.report:
        if args.json is None or not args.json.exists():
            parser.error("--report reads the studies of --json FILE")
        trials, epochs = (json.loads(args.json.read_text())[k] for k in ("trials", "epochs"))
        seeds = held_seeds(args.json, args.strategies)
    else:
        trials, epochs = args.trials, args.epochs
        seeds = list(range(args.seeds))
    if len(seeds) < 2:
        parser.error("at least 2 seeds are needed (a median needs them)")
    if "tpe" not in args.strategies:
        parser.error("--strategies: tpe is the baseline of the ratios")
    found = measure(seeds, trials, epochs, args.json, args.strategies)
    publish(report(found, seeds, trials, epochs), BLOCK, HEADING, args.write)


if __name__ == "__main__":
    main()
