"""Trainer throughput: tuneforge's ``models.training.trainer.train`` against a hand-written
PyTorch loop.

For each case (model spec, dataset, batch size) both sides train the same network (built by
``models.families.build_model`` under the same seed, so architecture and initial weights are
identical) on the same standardized data, with Adam (lr 1e-3), the same batch size and the same
``torch.randperm`` batch order, and both evaluate on the validation split after every epoch.
Both run with ``torch.set_num_threads(1)``: a trial reserves one CPU.

Only the epoch loop is timed: from just before the first epoch to the moment the last epoch's
metrics exist (tuneforge: the last ``EpochMetrics`` is yielded). tuneforge's end phase (final
metrics, MC dropout, state dict and TorchScript export: the ``TrainResult``) has no
counterpart in the hand loop; it is timed on its own and reported in its own column.

Each side is warmed up once, then the two sides alternate (order swapped every repeat) so
machine noise hits both alike. Goal (the issue): tuneforge >= 0.95 x the hand loop.

Usage::

    .venv/bin/python benchmarks/trainer.py            # full run (~2 min on 2 cores)
    .venv/bin/python benchmarks/trainer.py --quick    # smoke run (< 1 min)
    .venv/bin/python benchmarks/trainer.py --write    # also rewrite its block of RESULTS.md
    .venv/bin/python benchmarks/trainer.py --profile mlp-digits   # where the time goes
    .venv/bin/python benchmarks/trainer.py --case gnn-motifs      # one case (the GNN family)
"""

import argparse
import contextlib
import cProfile
import gc
import math
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as `python benchmarks/trainer.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
import torch
from torch.nn import functional as F

import models.training.trainer as tf_trainer
from benchmarks.harness import RESULTS, log, publish, report_head
from models.data import Dataset, load_dataset
from models.families import build_model
from models.training.config import TrainConfig, n_outputs
from models.training.results import EpochMetrics, TrainResult
from models.training.trainer import train

HEADING = "## Trainer throughput vs a hand-written loop"
BLOCK = "benchmarks/trainer.py"
SEED = 0
GOAL = 0.95  # tuneforge / hand, from the issue


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str
    spec: dict[str, Any]
    batch_size: int
    loss: str  # TrainConfig.loss
    epochs: int  # full run; --quick uses a fifth


CASES = (
    Case(
        "mlp-digits", "digits", {"family": "mlp", "width": 256, "hidden_layers": 2}, 64, "auto", 60
    ),
    Case("cnn-digits", "digits", {"family": "cnn", "width": 32, "stages": 2}, 64, "auto", 20),
    Case("transformer-digits", "digits", {"family": "transformer"}, 64, "auto", 10),
    Case(
        "mlp-breast_cancer",
        "breast_cancer",
        {"family": "mlp", "width": 256, "hidden_layers": 2},
        32,
        "bce",
        100,
    ),
    Case(
        "gnn-motifs",
        "motifs",
        {"family": "gnn", "layer": "gin", "readout": "sum", "width": 64, "layers": 3},
        32,
        "auto",
        20,
    ),
)


@dataclass
class Run:
    loop_s: float  # the epoch loop
    end_s: float  # tuneforge's end phase (TrainResult); 0 for the hand loop
    train_loss: float  # last epoch's, to check both sides trained the same thing


# -- tuneforge ------------------------------------------------------------------------------


@contextlib.contextmanager
def _loop_start_probe() -> Iterator[list[float]]:
    """Record when ``train`` has finished its set-up (scalers, model, tensors, optimizer).

    ``train`` is a generator whose set-up runs on the first ``next``; the optimizer is among
    the last things its ``Trainer`` builds before the epoch loop (only the learning-rate
    schedule's bookkeeping follows), so wrapping ``make_optimizer`` where the trainer looks it
    up marks the start of the loop without touching the trainer. If that name is ever gone,
    the set-up is counted (a few milliseconds) and a warning says so.
    """
    stamps: list[float] = []
    original = getattr(tf_trainer, "make_optimizer", None)
    if original is None:
        log("warning: models.training.trainer.make_optimizer is gone; timing includes set-up")
        yield stamps
        return

    def probe(*args: Any, **kwargs: Any) -> Any:
        opt = original(*args, **kwargs)
        stamps.append(time.perf_counter())
        return opt

    tf_trainer.make_optimizer = probe
    try:
        yield stamps
    finally:
        tf_trainer.make_optimizer = original


def run_tuneforge(case: Case, data: Dataset, epochs: int) -> Run:
    cfg = TrainConfig(epochs=epochs, batch_size=case.batch_size, loss=case.loss)
    with _loop_start_probe() as start:
        t_call = time.perf_counter()
        last_epoch = t_end = math.nan
        train_loss = math.nan
        for item in train(case.spec, cfg, data, seed=SEED):
            now = time.perf_counter()
            if isinstance(item, EpochMetrics):
                last_epoch, train_loss = now, item.metrics["train_loss"]
            else:
                assert isinstance(item, TrainResult)
                t_end = now
    t0 = start[0] if start else t_call
    return Run(last_epoch - t0, t_end - last_epoch, train_loss)


# -- the hand-written loop -----------------------------------------------------------------


def _graph_feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of padded graphs' (N, M, 2 + F + M) node features over real nodes (column
    0 is the node mask, columns 2..2+F the features); 0 and 1 for the other columns."""
    m = x.shape[1]
    f = x.shape[2] - 2 - m
    feats = x[..., 2 : 2 + f][x[..., 0] > 0]
    mean, std = np.zeros((1, x.shape[2]), np.float32), np.ones((1, x.shape[2]), np.float32)
    mean[0, 2 : 2 + f], std[0, 2 : 2 + f] = feats.mean(axis=0), feats.std(axis=0)
    return mean, std


def run_hand(case: Case, data: Dataset, epochs: int) -> Run:
    """The plain loop a PyTorch user writes for the same model, data and batch size."""
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    binary = case.loss == "bce"
    # Standardize with the training split's statistics (constant features keep scale 1).
    mean, std = data.x_train.mean(axis=0), data.x_train.std(axis=0)
    if data.info.kind == "graph":  # padded graphs: only the real nodes' feature columns
        mean, std = _graph_feature_stats(data.x_train)
    std = np.where(std == 0, 1.0, std)
    mean_t = torch.tensor(mean, dtype=torch.float32)
    std_t = torch.tensor(std, dtype=torch.float32)
    x_tr = (torch.tensor(data.x_train) - mean_t) / std_t
    x_va = (torch.tensor(data.x_val) - mean_t) / std_t
    y_tr, y_va = torch.tensor(data.y_train), torch.tensor(data.y_val)
    cfg = TrainConfig(loss=case.loss)
    model = build_model(case.spec, data.info.input_shape, n_outputs(cfg, data.info))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if binary:
            return F.binary_cross_entropy_with_logits(out.squeeze(1), y.float())
        return F.cross_entropy(out, y)

    n, bs = len(x_tr), case.batch_size
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            xb, yb = x_tr[idx], y_tr[idx]
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        train_loss = total / n
        model.eval()
        with torch.no_grad():
            out = model(x_va)
            val_loss = loss_fn(out, y_va).item()
            pred = (out.squeeze(1) > 0).long() if binary else out.argmax(dim=1)
            val_acc = (pred == y_va).float().mean().item()
        del val_loss, val_acc  # a real loop would log them
    return Run(time.perf_counter() - t0, 0.0, train_loss)


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    epochs: int
    n_train: int
    tuneforge: list[Run]
    hand: list[Run]

    def rates(self, runs: list[Run]) -> list[float]:
        return [self.n_train * self.epochs / r.loop_s for r in runs]

    def ratios(self) -> list[float]:
        # Paired repeat by repeat: the two runs of a pair ran back to back.
        return [
            a / b for a, b in zip(self.rates(self.tuneforge), self.rates(self.hand), strict=True)
        ]

    def extra_us_per_step(self) -> float:
        """tuneforge's extra time per training step (medians), in microseconds."""
        steps = self.epochs * math.ceil(self.n_train / self.case.batch_size)
        tf = statistics.median(r.loop_s for r in self.tuneforge)
        hand = statistics.median(r.loop_s for r in self.hand)
        return (tf - hand) / steps * 1e6

    def hand_us_per_step(self) -> float:
        steps = self.epochs * math.ceil(self.n_train / self.case.batch_size)
        return statistics.median(r.loop_s for r in self.hand) / steps * 1e6

    def same_loss(self) -> bool:
        a, b = self.tuneforge[0].train_loss, self.hand[0].train_loss
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def measure(case: Case, epochs: int, repeats: int) -> Result:
    data = load_dataset(case.dataset)
    warm = max(1, epochs // 10)
    run_tuneforge(case, data, warm)
    run_hand(case, data, warm)
    sides: dict[str, Callable[[Case, Dataset, int], Run]] = {
        "tuneforge": run_tuneforge,
        "hand": run_hand,
    }
    runs: dict[str, list[Run]] = {"tuneforge": [], "hand": []}
    for i in range(repeats):
        order = ["tuneforge", "hand"] if i % 2 == 0 else ["hand", "tuneforge"]
        for side in order:
            gc.collect()
            runs[side].append(sides[side](case, data, epochs))
    return Result(case, epochs, len(data.x_train), runs["tuneforge"], runs["hand"])


# -- reporting ------------------------------------------------------------------------------


def _spread(values: list[float], fmt: str) -> str:
    return (
        f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
        if len(values) > 1
        else f"{values[0]:{fmt}}"
    )


def table(results: list[Result]) -> str:
    lines = [
        "| case | batch | epochs | samples/s tuneforge | samples/s hand | ratio | "
        "extra µs/step | same train loss | end phase (s) |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    for r in results:
        ratio = r.ratios()
        verdict = "" if statistics.median(ratio) >= GOAL else " **< 0.95**"
        lines.append(
            f"| {r.case.name} | {r.case.batch_size} | {r.epochs} "
            f"| {_spread(r.rates(r.tuneforge), ',.0f')} | {_spread(r.rates(r.hand), ',.0f')} "
            f"| {_spread(ratio, '.3f')}{verdict} | {r.extra_us_per_step():.0f} "
            f"| {'yes' if r.same_loss() else 'NO'} "
            f"| {_spread([x.end_s for x in r.tuneforge], '.2f')} |"
        )
    return "\n".join(lines)


def machine() -> str:
    return f"torch {torch.__version__}, {torch.get_num_threads()} torch thread"


def report(results: list[Result], repeats: int) -> str:
    """Head lines, the table, the goal's verdict and the hand loop's time per step."""
    met = sum(statistics.median(r.ratios()) >= GOAL for r in results)
    steps = ", ".join(f"{r.case.name} {r.hand_us_per_step():.0f}" for r in results)
    return "\n".join(
        [
            report_head(
                machine(),
                f"one warm-up run per side, then {repeats} alternating repeats; cells: median "
                "(min-max); ratio: tuneforge / hand per back-to-back pair; one torch thread.",
            ),
            "",
            table(results),
            "",
            f"Goal (tuneforge >= {GOAL} x the hand loop, median ratio): met in {met} of "
            f"{len(results)} cases. The hand loop's time per training step, µs: {steps}.",
        ]
    )


# -- profiling ------------------------------------------------------------------------------


def _epochs_only(case: Case, data: Dataset, epochs: int) -> None:
    """tuneforge's epoch loop without its end phase: stop at the last EpochMetrics."""
    cfg = TrainConfig(epochs=epochs, batch_size=case.batch_size, loss=case.loss)
    gen = train(case.spec, cfg, data, seed=SEED)
    for item in gen:
        if isinstance(item, EpochMetrics) and item.epoch == epochs:
            gen.close()
            return


def profile(case: Case, epochs: int) -> None:
    """Where does each side spend its time? Op counts and self CPU time per training step
    (torch.profiler), then the Python functions (cProfile), of the epoch loops only."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    data = load_dataset(case.dataset)
    steps = epochs * math.ceil(len(data.x_train) / case.batch_size)
    sides: dict[str, Callable[[], object]] = {
        "tuneforge": lambda: _epochs_only(case, data, epochs),
        "hand": lambda: run_hand(case, data, epochs),
    }
    for fn in sides.values():
        fn()  # warm-up
    ops: dict[str, dict[str, tuple[float, float]]] = {}
    for name, fn in sides.items():
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        ops[name] = {
            e.key: (e.count / steps, e.self_cpu_time_total / steps) for e in prof.key_averages()
        }
    print(f"{case.name}: {epochs} epochs, {steps} training steps; per training step:")
    print(f"{'op':40s} {'calls tf':>9s} {'calls hand':>10s} {'self us tf':>11s} {'hand':>8s}")
    keys = sorted(
        set(ops["tuneforge"]) | set(ops["hand"]),
        key=lambda k: ops["hand"].get(k, (0, 0))[1] - ops["tuneforge"].get(k, (0, 0))[1],
    )
    for key in keys[:25]:
        (ct, ut), (ch, uh) = ops["tuneforge"].get(key, (0, 0)), ops["hand"].get(key, (0, 0))
        print(f"{key[:40]:40s} {ct:9.2f} {ch:10.2f} {ut:11.1f} {uh:8.1f}")
    total = {k: sum(u for _, u in v.values()) for k, v in ops.items()}
    print(
        f"{'total self CPU (us/step)':40s} {'':9s} {'':10s} {total['tuneforge']:11.1f} "
        f"{total['hand']:8.1f}"
    )
    for name, fn in sides.items():
        prof_py = cProfile.Profile()
        prof_py.enable()
        fn()
        prof_py.disable()
        print(f"\n=== cProfile, {name} (cumulative) ===")
        pstats.Stats(prof_py).sort_stats("cumulative").print_stats(14)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats (< 1 min)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per side")
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    parser.add_argument(
        "--case",
        action="append",
        choices=[c.name for c in CASES],
        help="run only this case (repeatable)",
    )
    parser.add_argument(
        "--profile",
        metavar="CASE",
        choices=[c.name for c in CASES],
        help="profile one case (torch.profiler ops per step, then cProfile) instead",
    )
    args = parser.parse_args()

    torch.set_num_threads(1)  # a trial reserves one CPU; both sides get the same
    cases = [c for c in CASES if not args.case or c.name in args.case]
    if args.profile:
        case = next(c for c in CASES if c.name == args.profile)
        profile(case, max(1, case.epochs // 5))
        return
    repeats = args.repeats or (3 if args.quick else 7)
    results = []
    for case in cases:
        epochs = max(1, case.epochs // 5) if args.quick else case.epochs
        t0 = time.perf_counter()
        results.append(measure(case, epochs, repeats))
        log(f"  {case.name}: {time.perf_counter() - t0:.1f} s")
    publish(report(results, repeats), BLOCK, HEADING, args.write)


if __name__ == "__main__":
    main()
