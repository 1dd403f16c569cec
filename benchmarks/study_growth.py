"""Scale of a study: does a trial cost more when the study already holds thousands?

One ``tuneforge serve`` (embedded default: SQLite, local Ray with 2 CPUs) runs one study of
``--trials`` (5,100) no-op function trials (``task: {kind: function, name: noop}``), two at a
time, random search over one float. Afterwards every trial's completion time is read back
through the API, and the per-trial overhead at trial k is the mean time between completions
over the ``--window`` (100) trials centred on k: (end[k + w/2] - end[k - w/2]) / w. It is
reported at trial 100 and at trial 5,000 (goal: at most 1.5 times), and at a few points
between to show the trend.

While the study runs, a client polls ``GET /studies/{id}`` every 0.5 s, as the CLI's
``submit --wait`` does not (it follows the event stream) but a dashboard might.

Usage::

    .venv/bin/python benchmarks/study_growth.py --write     # ~2 min on 2 cores (its block)
    .venv/bin/python benchmarks/study_growth.py --trials 1200 --at 100 --at 1000  # smoke
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as `python benchmarks/study_growth.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks.harness import (
    RESULTS,
    all_trials,
    noop_study,
    publish,
    report_head,
    serve,
    ts,
    wait_study,
)

HEADING = "## Scale of a study: per-trial overhead as the study grows"
BLOCK = "benchmarks/study_growth.py"
# The service's default poll, not the tests' 0.2 s; workers warmed (the service's default).
SERVER_ENV = {"TUNEFORGE_SCHEDULER_POLL_S": "0.5"}


def per_trial_ms(ends: list[float], k: int, window: int) -> float:
    """Mean time between completions over the ``window`` trials centred on trial ``k``."""
    lo, hi = max(0, k - window // 2), min(len(ends) - 1, k + window // 2)
    return 1000.0 * (ends[hi] - ends[lo]) / (hi - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5100)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--at", type=int, action="append", help="trials to report (100, 5000)")
    parser.add_argument("--write", action="store_true", help=f"rewrite its block of {RESULTS}")
    args = parser.parse_args()
    points = args.at or [100, 1000, 2000, 3000, 4000, 5000]
    with (
        tempfile.TemporaryDirectory(prefix="tf-growth-") as tmp,
        serve(f"sqlite:///{Path(tmp) / 'tuneforge.db'}", Path(tmp), SERVER_ENV) as server,
    ):
        api = server.api
        t0 = time.time()
        created = api.post("/studies", json=noop_study("growth", args.trials))
        study_id = created.raise_for_status().json()["id"]
        study = wait_study(api, study_id, poll_s=0.5)
        wall = time.time() - t0
        assert study["trial_counts"]["COMPLETE"] == args.trials, study
        ends = sorted(ts(t["datetime_complete"]) or 0.0 for t in all_trials(api, study_id))
    per = {k: per_trial_ms(ends, k, args.window) for k in points}
    first, last = per[points[0]], per[points[-1]]
    ratio = last / first
    rows = [f"| {k:,} | {per[k]:.1f} |" for k in points]
    text = "\n".join(
        [
            report_head(
                "SQLite, local Ray with 2 CPUs",
                f"one study of {args.trials:,} no-op function trials, 2 at a time, random "
                f"search, through the API; per-trial overhead at trial k = mean time between "
                f"completions over the {args.window} trials centred on k. The whole study took "
                f"{wall:.0f} s ({1000 * wall / args.trials:.1f} ms a trial).",
            ),
            "",
            "| trial | per-trial overhead (ms) |",
            "|---:|---:|",
            *rows,
            "",
            f"Trial {points[-1]:,} / trial {points[0]:,} = {ratio:.2f} "
            f"(goal <= 1.5: {'met' if ratio <= 1.5 else 'missed'}).",
        ]
    )
    publish(text, BLOCK, HEADING, args.write)


if __name__ == "__main__":
    main()
