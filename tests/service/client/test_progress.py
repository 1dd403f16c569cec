"""``tuneforge submit --wait``'s view of the event stream: the live bar and the plain lines."""

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from service.client.events import Event
from service.client.progress import ProgressView


def study(status: str, complete: int, running: int, best: float | None, **extra: Any) -> Event:
    started = (datetime.now(UTC) - timedelta(seconds=75)).isoformat()
    counts = {"COMPLETE": complete, "RUNNING": running, "FAIL": 1, "PRUNED": 0, "WAITING": 0}
    data = {"status": status, "trial_counts": counts, "best_value": best, "started_at": started}
    return Event("study", {**data, "finished_at": None, **extra})


def trial(number: int, state: str, value: float | None, reason: str | None = None) -> Event:
    return Event("trial", {"number": number, "state": state, "value": value, "fail_reason": reason})


def test_the_live_bar_shows_trials_by_state_best_value_and_time_since_the_study_started() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    with ProgressView(12, live=True, echo=print, console=console) as view:
        view.show(study("running", complete=3, running=2, best=0.9512))
        view.show(trial(3, "COMPLETE", 0.95))  # drawn through the study's counts, not a line
    screen = out.getvalue()
    assert "running" in screen
    assert "4/12" in screen  # finished trials (complete, pruned, failed) of the budget
    assert "complete 3 running 2 pruned 0 failed 1" in screen
    assert "best 0.9512" in screen
    assert "0:01:1" in screen  # 75 s since the study started, whenever this client joined
    assert "trial 3 COMPLETE" not in screen


def test_without_a_terminal_each_change_is_one_line() -> None:
    lines: list[str] = []
    view = ProgressView(12, live=False, echo=lines.append)
    view.show(study("running", complete=0, running=2, best=None))
    view.show(study("running", complete=0, running=2, best=None))  # no change: no line
    view.show(trial(0, "COMPLETE", 0.9123))
    view.show(trial(1, "FAIL", None, "non-finite loss at epoch 3"))
    view.show(Event("epoch", {"number": 2, "epoch": 4, "value": 0.5}))  # not shown
    view.show(study("completed", complete=1, running=0, best=0.9123))
    assert lines[0].startswith("[running] complete=0 running=2 failed=1 pruned=0 best=- elapsed=")
    assert lines[1:3] == [
        "trial 0 COMPLETE value=0.9123",
        "trial 1 FAIL (non-finite loss at epoch 3)",
    ]
    assert lines[3].startswith("[completed] complete=1 running=0 failed=1 pruned=0 best=0.9123")
    assert len(lines) == 4
