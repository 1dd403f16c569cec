"""The live view of a study's events (``watch``, ``submit --wait``): the live bar and the lines
printed when the output is no terminal."""

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from service.client.events import Event
from service.client.progress import LiveLine, ProgressView, planned, progress_text


def counts(complete: int = 0, running: int = 0, pruned: int = 0, fail: int = 0) -> dict[str, int]:
    return {"COMPLETE": complete, "RUNNING": running, "PRUNED": pruned, "FAIL": fail, "WAITING": 0}


def study(status: str, best: float | None = None, **trials: int) -> Event:
    started = (datetime.now(UTC) - timedelta(seconds=75)).isoformat()
    data = {"status": status, "trial_counts": counts(**trials), "best_value": best}
    return Event("study", {**data, "started_at": started, "finished_at": None})


def trial(
    number: int, state: str, value: float | None, reason: str | None = None, **attrs: Any
) -> Event:
    values = None if value is None else [value]
    data = {"number": number, "state": state, "value": value, "values": values}
    return Event("trial", {**data, "fail_reason": reason, "user_attrs": attrs})


def test_the_progress_line_counts_each_outcome_of_the_budget() -> None:
    done = {"trial_counts": counts(complete=3, pruned=5), "best_value": 0.95556}
    assert progress_text(done, 8) == "8/8 done · 3 complete · 5 pruned · 0 failed · best 0.9556"
    going: dict[str, Any] = {"trial_counts": counts(complete=3, running=2), "best_value": None}
    assert (
        progress_text(going, 8)
        == "3/8 done · 2 running · 3 complete · 0 pruned · 0 failed · best -"
    )
    # Several objectives have a front, not one best value: none is shown.
    assert progress_text(done, 8, show_best=False).endswith("5 pruned · 0 failed")


def test_the_live_line_shows_the_text_and_the_time_since_the_study_started() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    with ProgressView(12, live=True, echo=print, console=console) as view:
        view.show(study("running", best=0.9512, complete=3, running=2, fail=1))
        view.show(trial(3, "COMPLETE", 0.95))  # drawn through the study's counts, not a line
    last = out.getvalue().split("\r")[-1]  # each redraw starts at the line's start
    assert last.startswith("\x1b[2Krunning ━━━━━━━━━━━━━━━━━━━━ 4/12 done · 2 running · ")
    assert "4/12 done · 2 running · 3 complete · 0 pruned · 1 failed · best 0.9512" in last
    assert " · elapsed 0:01:1" in last  # 75 s since the study started, whenever this joined
    assert "trial 3" not in out.getvalue()


def test_the_live_line_fits_the_terminal_dropping_the_bar_before_the_text() -> None:
    line = LiveLine(8, show_best=True)
    line.study = study("running", best=0.9556, complete=3, running=2).data
    text = "3/8 done · 2 running · 3 complete · 0 pruned · 0 failed · best 0.9556"
    assert re.fullmatch(rf"running ━{{20}} {text} · elapsed 0:01:1\d", line.fit(160).plain)
    assert re.fullmatch(rf"running ━{{10}} {text} · elapsed 0:01:1\d", line.fit(106).plain)
    assert line.fit(80).plain == f"running {text}"
    assert line.fit(40).plain == text[:39] + "…"


def test_without_a_terminal_the_lines_follow_the_events_and_the_final_line_is_last() -> None:
    lines: list[str] = []
    view = ProgressView(3, live=False, echo=lines.append)
    # What the server sends, a look at a time: the study (when it changed), then its trials.
    looks = [
        [study("pending")],
        [study("running", running=2), trial(0, "RUNNING", None), trial(1, "RUNNING", None)],
        [Event("epoch", {"number": 1, "epoch": 4, "value": 0.5})],  # not shown
        [study("running", running=2, complete=1, best=0.9), trial(0, "COMPLETE", 0.9123)],
        [
            study("completed", complete=2, fail=1, best=0.95),
            trial(1, "FAIL", None, "non-finite loss at epoch 3"),
            trial(2, "COMPLETE", 0.95),
            Event("end", study("completed", complete=2, fail=1, best=0.95).data),
        ],
    ]
    for look in looks:
        for event in look:
            view.show(event)
    assert [line.split(" · elapsed ")[0] for line in lines] == [
        "[pending] 0/3 done · 0 complete · 0 pruned · 0 failed · best -",
        "[running] 0/3 done · 2 running · 0 complete · 0 pruned · 0 failed · best -",
        "trial 0 COMPLETE value=0.9123",
        "trial 1 FAIL (non-finite loss at epoch 3)",
        "trial 2 COMPLETE value=0.9500",
        "[completed] 3/3 done · 2 complete · 0 pruned · 1 failed · best 0.9500",
    ]
    assert " · elapsed 0:01:1" in lines[-1]  # since the study started, 75 s ago


def test_a_status_line_comes_after_the_trials_it_counts() -> None:
    lines: list[str] = []
    view = ProgressView(4, live=False, echo=lines.append)
    # Joining a study that runs: the study, then every trial so far.
    for event in [
        study("running", running=1, complete=2, best=0.9),
        trial(0, "COMPLETE", 0.8),
        trial(1, "COMPLETE", 0.9),
        trial(2, "RUNNING", None),
        Event("epoch", {"number": 2, "epoch": 1, "value": 0.5}),
    ]:
        view.show(event)
    assert [line.split(" · elapsed ")[0] for line in lines] == [
        "trial 0 COMPLETE value=0.8000",
        "trial 1 COMPLETE value=0.9000",
        "[running] 2/4 done · 1 running · 2 complete · 0 pruned · 0 failed · best 0.9000",
    ]


def test_a_stream_opened_again_tells_no_trial_twice() -> None:
    lines: list[str] = []
    view = ProgressView(2, live=False, echo=lines.append)
    for _ in range(2):  # the server closed the stream; the new one starts with the study so far
        view.show(study("running", running=1, complete=1, best=0.9))
        view.show(trial(0, "COMPLETE", 0.9))
        view.show(trial(1, "RUNNING", None))
    assert [line for line in lines if line.startswith("trial")] == ["trial 0 COMPLETE value=0.9000"]


def test_trials_a_stop_cut_short_lengthen_the_bar_of_a_resumed_study() -> None:
    lines: list[str] = []
    view = ProgressView(2, live=False, echo=lines.append)
    looks = [
        [  # resumed: 2 trials cut short by the stop, the budget is 2 again
            study("running", fail=2, running=2),
            trial(0, "FAIL", None, "stopped by user", interrupted=True),
            trial(1, "FAIL", None, "stopped by user", interrupted=True),
            trial(2, "RUNNING", None),
            trial(3, "RUNNING", None),
        ],
        [
            study("completed", fail=2, complete=2, best=0.9),
            trial(2, "COMPLETE", 0.9),
            trial(3, "COMPLETE", 0.8),
            Event("end", study("completed", fail=2, complete=2, best=0.9).data),
        ],
    ]
    for look in looks:
        for event in look:
            view.show(event)
    assert lines[2].startswith("[running] 2/4 done · 2 running · 0 complete · 0 pruned · 2 failed")
    assert lines[-1].startswith("[completed] 4/4 done · 2 complete · 0 pruned · 2 failed")
    # Without the trials (``tuneforge status``), the total is never below what ran.
    ended = study("stopped", fail=2, complete=2).data
    assert progress_text(ended, planned(ended, 2)).startswith("4/4 done")
