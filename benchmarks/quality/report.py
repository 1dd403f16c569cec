"""The search-quality benchmark's report: the table, the goal's ratio and the figures the
hand-written reading in RESULTS.md draws on."""

import math
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.harness import ROOT, report_head, versions
from benchmarks.quality.common import (
    EPOCHS,
    FOREIGN_RATE,
    GOAL,
    LABELS,
    PARALLEL,
    PEERS,
    STRETCH,
    TARGET,
    Run,
)


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
    runs: list[Run]

    def ttt(self, target: float = TARGET) -> float:
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

    def finished(self) -> float:
        return _median([float(r.finished()) for r in self.runs])

    def gap(self) -> float:
        """Median time from the first trial done to the first trial >= TARGET."""
        return _median([r.time_to_target() - r.first_done() for r in self.runs])

    def per_minute(self) -> float:
        return 60 * self.finished() / self.runs[0].budget


def summarize(runs: list[Run]) -> list[Summary]:
    order = ("tuneforge", "tuneforge-warm", *PEERS)
    others = [s for s in dict.fromkeys(r.system for r in runs) if s not in order]
    return [
        Summary(s, [r for r in runs if r.system == s])
        for s in (*order, *sorted(others))
        if any(r.system == s for r in runs)
    ]


def _secs(t: float) -> str:
    return fmt_time(t) + (" s" if math.isfinite(t) else "")


def algorithm_lines(summaries: list[Summary]) -> list[str]:
    """Each other tuneforge algorithm's median times to TARGET and STRETCH against tpe + asha's
    in the same run (``--algorithm``), whichever way they fall."""
    by = {s.system: s for s in summaries}
    lines = []
    for s in summaries:
        if not s.system.startswith("tuneforge-") or s.system.endswith("-warm"):
            continue
        base = by.get("tuneforge")
        if base is None:
            continue
        parts = []
        for target in (TARGET, STRETCH):
            mine, theirs = s.ttt(target), base.ttt(target)
            ratio = mine / theirs if math.isfinite(mine) and math.isfinite(theirs) else math.nan
            parts.append(
                f"to {target}: {_secs(mine)} against {_secs(theirs)}"
                + (f" (ratio {ratio:.2f})" if math.isfinite(ratio) else "")
            )
        lines += ["", f"{LABELS[s.system]} against tpe + asha, medians: " + "; ".join(parts) + "."]
    return lines


def table(summaries: list[Summary]) -> str:
    lines = [
        f"| system | time to {TARGET}, s: median (per seed) | best val_accuracy: median "
        f"(per seed) | time to {STRETCH}, s: median (per seed) | first trial done, s "
        "| trials complete / pruned / failed | trials per minute |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        counts = " / ".join(
            f"{_median([float(r.count(k)) for r in s.runs]):.0f}"
            for k in ("complete", "pruned", "failed")
        )
        lines.append(
            f"| {LABELS[s.system]} "
            f"| {fmt_time(s.ttt())} ({s.per_seed(lambda r: fmt_time(r.time_to_target()))}) "
            f"| {fmt_acc(s.best())} ({s.per_seed(lambda r: fmt_acc(r.best()))}) "
            f"| {fmt_time(s.ttt(STRETCH))} "
            f"({s.per_seed(lambda r: fmt_time(r.time_to_target(STRETCH)))}) "
            f"| {fmt_time(s.first_done(), 'none')} "
            f"| {counts} "
            f"| {s.per_minute():.0f} |"
        )
    return "\n".join(lines)


def ratio_line(summaries: list[Summary], system: str = "tuneforge") -> str:
    """tuneforge's median time to TARGET over the best peer's, and the goal's verdict."""
    by = {s.system: s for s in summaries}
    peers = [s for s in summaries if s.system in PEERS]
    if system not in by or not peers:
        return "Ratio: needs tuneforge and at least one peer in the same run."
    best_peer = min(peers, key=lambda s: s.ttt())
    tf, peer = by[system].ttt(), best_peer.ttt()
    name = f"{LABELS[best_peer.system].split(' (')[0]}"
    if math.isinf(tf):
        return (
            f"{LABELS[system]}: did not reach {TARGET} in the median run (best peer, {name}: "
            f"{fmt_time(peer)} s): goal NOT met."
        )
    if math.isinf(peer):
        return f"{LABELS[system]}: no peer reached {TARGET} in the median run: goal met."
    met = "met" if tf / peer <= GOAL else "NOT met"
    return (
        f"{LABELS[system]}: median time to {TARGET} / the best peer's ({name}) = "
        f"{tf:.1f} / {peer:.1f} = **{tf / peer:.2f}** (goal <= {GOAL}): goal {met}."
    )


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


def figures(summaries: list[Summary], discarded: int, import_s: float | None) -> str:
    """Per system (medians): first trial done, then to TARGET, the first dispatch, start-up
    outside the clock, the orchestrating process's CPU; and the run's conditions."""
    lines = [
        f"| system | first trial done, s | then to {TARGET}, s | first trial dispatched, s "
        "| start-up outside the clock, s | orchestrating process's CPU during the budget, s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        starts = [r.startup_s for r in s.runs if r.startup_s is not None]
        cpu = [r.orchestrator_cpu_s for r in s.runs if r.orchestrator_cpu_s is not None]
        lines.append(
            f"| {s.system} | {fmt_time(s.first_done(), 'never')} | {fmt_time(s.gap(), 'never')} "
            f"| {fmt_time(_median([r.first_start() for r in s.runs]), '-')} "
            f"| {fmt_time(_median(starts)) if starts else '-'} "
            f"| {fmt_time(_median(cpu)) if cpu else '-'} |"
        )
    runs = [r for s in summaries for r in s.runs]
    worst = max(runs, key=lambda r: r.foreign_cpu_s)
    skewed = [f"{r.system} seed {r.seed}" for r in runs if r.skewed]
    notes = [f"{r.system} seed {r.seed}: {r.note}" for r in runs if r.note]
    lines += [
        "",
        f"Other processes' CPU during one kept measurement, at most: {worst.foreign_cpu_s:.1f} "
        f"CPU-s ({worst.system}, seed {worst.seed}); measurements discarded and repeated (other "
        f"processes above {FOREIGN_RATE} CPUs on average): {discarded}; still skewed: "
        f"{', '.join(skewed) or 'none'}."
        + (f" Cold import of a trial's code: {import_s:.1f} s." if import_s is not None else ""),
    ]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return "\n".join(lines)


def report(
    summaries: list[Summary],
    budget: float,
    seeds: list[int],
    discarded: int,
    import_s: float | None,
) -> str:
    """Head lines, the table, the goal's ratio(s) and the figures."""
    lines = [
        report_head(
            versions("ray", "optuna", "torch"),
            f"seeds {', '.join(map(str, seeds))}; a wall budget of {budget:g} s per run; "
            f"{PARALLEL} trials in parallel on {PARALLEL} CPUs; {EPOCHS} epochs at most.",
        ),
        "",
        table(summaries),
        "",
        ratio_line(summaries),
    ]
    if any(s.system == "tuneforge-warm" for s in summaries):
        lines += ["", ratio_line(summaries, "tuneforge-warm")]
    lines += algorithm_lines(summaries)
    lines += ["", figures(summaries, discarded, import_s)]
    return "\n".join(lines)
