"""The search-quality benchmark's report: per task, the table, the goals' verdicts and the
figures the hand-written reading in RESULTS.md draws on."""

import math
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.harness import ROOT, report_head, versions
from benchmarks.quality.common import FOREIGN_RATE, GOAL, LABELS, PARALLEL, PEERS, Run
from benchmarks.quality.tasks import TASKS, Task


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def fmt_time(t: float, never: str = "not reached") -> str:
    """Seconds to one decimal; ``never`` for infinity, n/a for nan."""
    return never if math.isinf(t) else "n/a" if math.isnan(t) else f"{t:.1f}"


def fmt_acc(v: float | None) -> str:
    """An accuracy to four decimals (none: no trial completed)."""
    return "none" if v is None else f"{v:.4f}"


@dataclass
class Summary:
    system: str
    task: Task
    runs: list[Run]

    def ttt(self, target: float | None = None) -> float:
        """Median time to target; a run that never reached it counts as infinite."""
        return _median([r.time_to_target(target) for r in self.runs])

    def best(self) -> float | None:
        values = [r.best() for r in self.runs]
        known = [v for v in values if v is not None]
        return _median(known) if len(known) == len(values) and known else None

    def per_seed(self, fn: Callable[[Run], str]) -> str:
        return ", ".join(fn(r) for r in self.runs)

    def first_done(self) -> float:
        return _median([r.first_done() for r in self.runs])

    def per_minute(self) -> float:
        """Median trials finished (complete or pruned) per minute of budget."""
        return _median([60 * r.finished() / r.budget for r in self.runs])

    def cpu(self) -> float:
        """Median CPU seconds of the orchestrating process during the budget (nan: none)."""
        return _median(
            [r.orchestrator_cpu_s for r in self.runs if r.orchestrator_cpu_s is not None]
        )


def summarize(runs: list[Run]) -> list[Summary]:
    """One summary per task and system, tasks in TASKS' order, tuneforge first."""
    order = ("tuneforge", "tuneforge-warm", *PEERS)
    out = []
    for task in TASKS.values():
        mine = [r for r in runs if r.task == task.name]
        systems = list(dict.fromkeys(r.system for r in mine))
        ranked = [s for s in order if s in systems] + sorted(s for s in systems if s not in order)
        out += [Summary(s, task, [r for r in mine if r.system == s]) for s in ranked]
    return out


def _secs(t: float) -> str:
    return fmt_time(t) + (" s" if math.isfinite(t) else "")


def _spread(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    missed = len(values) - len(finite)
    return f" [{low:.1f}-{high:.1f}" + (f"; {missed} not reached]" if missed else "]")


def table(summaries: list[Summary]) -> str:
    task = summaries[0].task
    lines = [
        f"| system | time to {task.target}, s: median [range] (per seed) | best val_accuracy: "
        f"median (per seed) | time to {task.stretch}, s: median [range] | first trial done, s "
        "| trials complete / pruned / failed | trials per minute | orchestrator CPU, s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        counts = " / ".join(
            f"{_median([float(r.count(k)) for r in s.runs]):.0f}"
            for k in ("complete", "pruned", "failed")
        )
        to_target = [r.time_to_target() for r in s.runs]
        to_stretch = [r.time_to_target(task.stretch) for r in s.runs]
        cpu = s.cpu()
        lines.append(
            f"| {LABELS.get(s.system, s.system)} "
            f"| {fmt_time(s.ttt())}{_spread(to_target)} "
            f"({s.per_seed(lambda r: fmt_time(r.time_to_target(), 'no'))}) "
            f"| {fmt_acc(s.best())} ({s.per_seed(lambda r: fmt_acc(r.best()))}) "
            f"| {fmt_time(s.ttt(task.stretch))}{_spread(to_stretch)} "
            f"| {fmt_time(s.first_done(), 'none')} "
            f"| {counts} "
            f"| {s.per_minute():.0f} "
            f"| {'-' if math.isnan(cpu) else f'{cpu:.1f}'} |"
        )
    return "\n".join(lines)


def goal_lines(summaries: list[Summary]) -> list[str]:
    """The issue's three goals for one task: tuneforge's median time to each target at most
    GOAL of the best peer row's (cold or warm), its throughput at least the best peer's, its
    server's CPU at most Ray Tune's driver's."""
    by = {s.system: s for s in summaries}
    peers = [s for s in summaries if s.system in PEERS]
    tf = by.get("tuneforge")
    if tf is None or not peers:
        return ["Goals: need tuneforge and at least one peer in the same run."]
    task = tf.task
    lines = []
    for target in (task.target, task.stretch):
        best = min(peers, key=lambda s: s.ttt(target))
        mine, theirs = tf.ttt(target), best.ttt(target)
        name = LABELS.get(best.system, best.system)
        if math.isinf(mine):
            verdict = (
                f"tuneforge did not reach it in the median run ({name}: {_secs(theirs)}): NOT met"
            )
        elif math.isinf(theirs):
            verdict = f"tuneforge {_secs(mine)}; no peer row reached it in the median run: met"
        else:
            ratio = mine / theirs
            verdict = (
                f"tuneforge {mine:.1f} s / {name} {theirs:.1f} s = **{ratio:.2f}** "
                f"(goal <= {GOAL}): {'met' if ratio <= GOAL else 'NOT met'}"
            )
        lines.append(f"- Time to {target}: {verdict}.")
    fastest = max(peers, key=lambda s: s.per_minute())
    rate, peer_rate = tf.per_minute(), fastest.per_minute()
    lines.append(
        f"- Throughput: tuneforge {rate:.0f} trials/min, best peer row "
        f"({LABELS.get(fastest.system, fastest.system)}) {peer_rate:.0f}: "
        f"{'met' if rate >= peer_rate else 'NOT met'}."
    )
    ray = by.get("raytune")
    if ray is not None and not math.isnan(ray.cpu()) and not math.isnan(tf.cpu()):
        mine_cpu, ray_cpu = tf.cpu(), ray.cpu()
        lines.append(
            f"- Orchestrator CPU during the budget: tuneforge's server {mine_cpu:.1f} s, Ray "
            f"Tune's driver {ray_cpu:.1f} s (ratio {mine_cpu / ray_cpu:.2f}): "
            f"{'met' if mine_cpu <= ray_cpu else 'NOT met'}."
        )
    return lines


def algorithm_lines(summaries: list[Summary]) -> list[str]:
    """Each other tuneforge algorithm's median times to the targets against tpe + asha's in
    the same run (``--algorithm``), whichever way they fall."""
    by = {s.system: s for s in summaries}
    lines = []
    for s in summaries:
        if not s.system.startswith("tuneforge-") or s.system.endswith("-warm"):
            continue
        base = by.get("tuneforge")
        if base is None:
            continue
        parts = []
        for target in (s.task.target, s.task.stretch):
            mine, theirs = s.ttt(target), base.ttt(target)
            ratio = mine / theirs if math.isfinite(mine) and math.isfinite(theirs) else math.nan
            parts.append(
                f"to {target}: {_secs(mine)} against {_secs(theirs)}"
                + (f" (ratio {ratio:.2f})" if math.isfinite(ratio) else "")
            )
        label = LABELS.get(s.system, s.system)
        lines += [f"- {label} against tpe + asha, medians: " + "; ".join(parts) + "."]
    return lines


def cold_import_s() -> float:
    """Seconds a fresh Python takes to import what a trial runs (the trial worker and the train
    trial kind: torch, the catalog, the trainer, Ray): what a cold worker pays before its first
    epoch, and what the server's warmed workers have paid before it reports ready."""
    code = (
        "import time; t = time.perf_counter(); import search.trials.worker, search.trials.train; "
        "print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def conditions(runs: list[Run], discarded: int, import_s: float | None) -> str:
    """How quiet the machine was, what was measured again, and the runs' notes."""
    worst = max(runs, key=lambda r: r.foreign_cpu_s)
    skewed = [f"{r.task} {r.system} seed {r.seed}" for r in runs if r.skewed]
    notes = [f"{r.task} {r.system} seed {r.seed}: {r.note}" for r in runs if r.note]
    starts = [r.startup_s for r in runs if r.startup_s is not None]
    text = (
        f"Other processes' CPU during one kept measurement, at most: {worst.foreign_cpu_s:.1f} "
        f"CPU-s ({worst.task}, {worst.system}, seed {worst.seed}); measurements discarded and "
        f"repeated (other processes above {FOREIGN_RATE} CPUs on average): {discarded}; still "
        f"skewed: {', '.join(skewed) or 'none'}."
    )
    if starts:
        text += f" tuneforge's start-up outside the clock: median {_median(starts):.1f} s."
    if import_s is not None:
        text += f" Cold import of a trial's code: {import_s:.1f} s."
    if notes:
        text += "\n\nNotes: " + "; ".join(notes) + "."
    return text


def report(
    summaries: list[Summary],
    seeds: list[int],
    discarded: int,
    import_s: float | None,
) -> str:
    """Head lines, then per task its table and goals, then the run's conditions."""
    lines = [
        report_head(
            versions("ray", "optuna", "torch"),
            f"seeds {', '.join(map(str, seeds))}; {PARALLEL} trials in parallel on {PARALLEL} "
            "CPUs; tpe (5 start-up trials) + asha (first rung 1 epoch, reduction factor 3).",
        )
    ]
    for task in TASKS.values():
        mine = [s for s in summaries if s.task.name == task.name]
        if not mine:
            continue
        budget = mine[0].runs[0].budget
        lines += [
            "",
            f"**{task.label}** ({task.epochs} epochs at most; targets {task.target} and "
            f"{task.stretch} validation accuracy; a wall budget of {budget:g} s per run)",
            "",
            table(mine),
            "",
            *goal_lines(mine),
            *algorithm_lines(mine),
        ]
    runs = [r for s in summaries for r in s.runs]
    lines += ["", conditions(runs, discarded, import_s)]
    return "\n".join(lines)
