"""Multi-objective early stopping: the hypervolume a study reaches in a fixed wall budget, with
``mo_asha`` against the same study unpruned, through the service, on digits.

One ``tuneforge serve`` (SQLite, local Ray, 2 CPUs) runs, per seed, two studies of the same
space (an MLP's depth, width, activation and learning rate; ``random`` search seeded with the
seed, so both propose the same points in the same order; two trials in parallel, ``EPOCHS``
epochs each) with two objectives, ``val_accuracy`` (maximize) against ``param_count`` (or
``latency_ms`` with ``--latency``; minimize): one unpruned, one with ``pruner: mo_asha``
(``min_resource`` 1, ``reduction_factor`` 3: rungs after epochs 1, 3 and 9). Each study has
``BUDGET_S`` seconds (``budget.timeout_s``). The figure is the hypervolume of the completed
trials' front (normalised: ``1 - val_accuracy`` against ``log10(param_count) / 6``, or
``latency_ms`` over 1.1 times the largest latency either study of that seed measured;
reference point (1, 1)), median over the seeds with its range; and the count of pruned trials
that carry their rung and reason.

Usage::

    .venv/bin/python benchmarks/mo_pruning.py            # 5 seeds (~9 min on 2 cores)
    .venv/bin/python benchmarks/mo_pruning.py --quick    # 2 seeds, 30 s budgets
    .venv/bin/python benchmarks/mo_pruning.py --write    # also rewrite its RESULTS.md block
"""

import argparse
import math
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as `python benchmarks/mo_pruning.py`: import from the repository root
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

HEADING = "## Multi-objective early stopping: hypervolume in a wall budget (digits MLP)"
BLOCK = "benchmarks/mo_pruning.py"
EPOCHS = 12
BUDGET_S = 60.0
PRUNER = {"name": "mo_asha", "settings": {"min_resource": 1, "reduction_factor": 3}}
SERVER_ENV = {"TUNEFORGE_SCHEDULER_POLL_S": "0.2"}


@dataclass
class Result:
    arm: str  # "unpruned" or "mo_asha"
    seed: int
    points: list[tuple[float, float]]  # (val_accuracy, second objective) of completed trials
    completed: int
    pruned: int
    pruned_with_reason: int  # pruned trials carrying pruned_at_rung and pruned_reason
    epochs: int  # epochs trained, all trials
    hypervolume: float = 0.0


def study_body(
    name: str, seed: int, second: str, pruner: dict[str, Any] | None, budget_s: float
) -> dict[str, Any]:
    return {
        "name": name,
        "objectives": [
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": second, "direction": "minimize"},
        ],
        "algorithm": {"name": "random", "settings": {"seed": seed}},
        "pruner": pruner,
        "search_space": {
            "model.hidden_layers": {"type": "int", "low": 1, "high": 3},
            "model.width": {"type": "int", "low": 8, "high": 256, "log": True},
            "model.activation": {"type": "categorical", "choices": ["relu", "gelu", "tanh"]},
            "training.lr": {"type": "float", "low": 1e-4, "high": 0.03, "log": True},
        },
        "budget": {"max_trials": 10_000, "timeout_s": budget_s},
        "parallelism": 2,
        "seed": seed,
        "task": {
            "dataset": {"name": "digits"},
            "model": {"family": "mlp"},
            "training": {"epochs": EPOCHS, "optimizer": "adam"},
        },
    }


def run_study(api: httpx.Client, arm: str, seed: int, second: str, budget_s: float) -> Result:
    pruner = PRUNER if arm == "mo_asha" else None
    body = study_body(f"{arm}-s{seed}", seed, second, pruner, budget_s)
    study_id = api.post("/studies", json=body).raise_for_status().json()["id"]
    wait_study(api, study_id, poll_s=0.5, timeout=budget_s + 300)
    trials = all_trials(api, study_id)
    done = [t for t in trials if t["state"] == "COMPLETE"]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    reasons = [t for t in pruned if {"pruned_at_rung", "pruned_reason"} <= set(t["user_attrs"])]
    return Result(
        arm,
        seed,
        [(t["values"][0], t["values"][1]) for t in done],
        len(done),
        len(pruned),
        len(reasons),
        sum(int(t["user_attrs"].get("epochs", 0)) for t in trials),
    )


def hypervolume(points: list[tuple[float, float]]) -> float:
    """The area dominated by ``points`` (both coordinates minimised) inside [0, 1]^2, up to the
    reference point (1, 1)."""
    inside = sorted((x, y) for x, y in points if x < 1 and y < 1)
    area, best_y = 0.0, 1.0
    for i, (x, y) in enumerate(inside):
        best_y = min(best_y, y)
        right = inside[i + 1][0] if i + 1 < len(inside) else 1.0
        area += (right - x) * (1.0 - best_y)
    return area


def normalise(results: list[Result], second: str) -> None:
    """Set each result's hypervolume, the seed's two arms on the same scale."""
    scale = 1.0
    if second == "latency_ms":
        scale = 1.1 * max((v for r in results for _, v in r.points), default=1.0)
    for r in results:
        if second == "param_count":
            norm = [(1 - a, math.log10(max(v, 1.0)) / 6) for a, v in r.points]
        else:
            norm = [(1 - a, v / scale) for a, v in r.points]
        r.hypervolume = hypervolume(norm)


def measure(seeds: list[int], second: str, budget_s: float) -> list[Result]:
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(f"sqlite:///{Path(tmp) / 'tuneforge.db'}", Path(tmp) / "data", SERVER_ENV) as server,
        server.api as api,
    ):
        for seed in seeds:
            pair = [run_study(api, arm, seed, second, budget_s) for arm in ("unpruned", "mo_asha")]
            normalise(pair, second)
            for r in pair:
                log(
                    f"  seed {seed} {r.arm:8}: hypervolume {r.hypervolume:.4f}, "
                    f"{r.completed} completed, {r.pruned} pruned, {r.epochs} epochs"
                )
            results += pair
    return results


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.4f} ({min(values):.4f}-{max(values):.4f})"


def report(results: list[Result], seeds: list[int], second: str, budget_s: float) -> str:
    method = (
        f"random search (seeded) over an MLP's depth, width, activation and lr on digits, "
        f"{EPOCHS} epochs, 2 trials in parallel, {budget_s:.0f} s per study; val_accuracy against "
        f"{second}; mo_asha min_resource 1, reduction_factor 3; {len(seeds)} seeds"
    )
    lines = [
        report_head("2 CPUs for trials", method),
        f"- Versions: {versions('torch', 'ray', 'optuna')}",
        "",
        "| Arm | Hypervolume, median (range) | Completed | Pruned | Pruned with rung + reason "
        "| Epochs trained |",
        "|---|---|---|---|---|---|",
    ]
    for arm in ("unpruned", "mo_asha"):
        mine = [r for r in results if r.arm == arm]
        lines.append(
            f"| {arm} | {_median([r.hypervolume for r in mine])} "
            f"| {statistics.median(r.completed for r in mine):g} "
            f"| {sum(r.pruned for r in mine)} | {sum(r.pruned_with_reason for r in mine)} "
            f"| {statistics.median(r.epochs for r in mine):g} |"
        )
    wins = sum(
        p.hypervolume > u.hypervolume for u, p in zip(results[::2], results[1::2], strict=True)
    )
    lines += ["", f"mo_asha reached the higher hypervolume on {wins} of {len(seeds)} seeds."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 30 s budgets")
    parser.add_argument("--latency", action="store_true", help="latency_ms as second objective")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds per study")
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    args = parser.parse_args()
    seeds = list(range(2 if args.quick else args.seeds))
    budget_s = 30.0 if args.quick else args.budget
    second = "latency_ms" if args.latency else "param_count"
    results = measure(seeds, second, budget_s)
    publish(report(results, seeds, second, budget_s), BLOCK, HEADING, args.write)


if __name__ == "__main__":
    main()
