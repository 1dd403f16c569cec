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

    .venv/bin/python benchmarks/study_growth.py --write     # ~2 min on 2 cores
    .venv/bin/python benchmarks/study_growth.py --trials 1200 --at 100 --at 1000  # smoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dispatch import noop_study  # noqa: E402
from benchmarks.results import section_head, write_section  # noqa: E402
from tests.conftest import start_server  # noqa: E402

SECTION = "## Scale of a study: per-trial overhead as the study grows"


def completion_times(api: Any, study_id: int, trials: int) -> list[float]:
    ends: list[float] = []
    offset = 0
    while offset < trials:
        page = api.get(f"/studies/{study_id}/trials", params={"offset": offset, "limit": 100})
        items = page.raise_for_status().json()["items"]
        if not items:
            break
        ends += [dt.datetime.fromisoformat(t["datetime_complete"]).timestamp() for t in items]
        offset += len(items)
    return sorted(ends)


def per_trial_ms(ends: list[float], k: int, window: int) -> float:
    lo, hi = max(0, k - window // 2), min(len(ends) - 1, k + window // 2)
    return 1000.0 * (ends[hi] - ends[lo]) / (hi - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5100)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--at", type=int, action="append", help="trials to report (100, 5000)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    points = args.at or [100, 1000, 2000, 3000, 4000, 5000]
    with tempfile.TemporaryDirectory(prefix="tf-growth-") as tmp:
        server = start_server(
            f"sqlite:///{Path(tmp) / 'tuneforge.db'}",
            Path(tmp),
            env={"TUNEFORGE_SCHEDULER_POLL_S": "0.5"},
        )
        try:
            api = server.api
            t0 = time.time()
            created = api.post("/studies", json=noop_study("growth", args.trials))
            study_id = created.raise_for_status().json()["id"]
            while True:
                study = api.get(f"/studies/{study_id}").raise_for_status().json()
                if study["status"] in ("completed", "failed", "stopped"):
                    break
                time.sleep(0.5)
            wall = time.time() - t0
            assert study["trial_counts"]["COMPLETE"] == args.trials, study
            ends = completion_times(api, study_id, args.trials)
        finally:
            server.stop(signal.SIGTERM)
    per = {k: per_trial_ms(ends, k, args.window) for k in points}
    first, last = per[points[0]], per[points[-1]]
    ratio = last / first
    rows = [f"| {k:,} | {per[k]:.1f} |" for k in points]
    text = "\n".join(
        [
            *section_head(
                SECTION,
                "SQLite, local Ray with 2 CPUs",
                f"one study of {args.trials:,} no-op function trials, 2 at a time, random "
                f"search, through the API; per-trial overhead at trial k = mean time between "
                f"completions over the {args.window} trials centred on k. The whole study took "
                f"{wall:.0f} s ({1000 * wall / args.trials:.1f} ms a trial).",
            ),
            "| trial | per-trial overhead (ms) |",
            "|---:|---:|",
            *rows,
            "",
            f"Trial {points[-1]:,} / trial {points[0]:,} = {ratio:.2f} "
            f"(goal <= 1.5: {'met' if ratio <= 1.5 else 'missed'}).",
            "",
        ]
    )
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
