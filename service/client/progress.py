"""The live view of a study's events (``tuneforge watch``, ``submit --wait``): one line that
cannot be misread, ``5/8 done · 2 running · 3 complete · 0 pruned · 0 failed · best 0.9556``.

On a terminal it is one live line, redrawn in place: status, bar, that text, the time since
the study started; fitted to the terminal's width (the bar shrinks, then goes, before the
text is cut). When the output is a file or a pipe, each line is printed once, in the order
of the events: the study's status when it changes, a line per finished trial, and last the
final status line.
"""

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from service.client.api import FINISHED
from service.client.events import Event
from service.client.tables import TRIAL_DONE, budget_counts, number, trial_value


def _timestamp(study: Mapping[str, Any], field: str) -> float | None:
    value = study.get(field)
    return datetime.fromisoformat(value).timestamp() if value else None


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def elapsed(study: Mapping[str, Any]) -> str:
    """Time since the study started (to its end, once it ended); ``-:--:--`` before."""
    started = _timestamp(study, "started_at")
    if started is None:
        return "-:--:--"
    return _clock((_timestamp(study, "finished_at") or time.time()) - started)


def planned(study: Mapping[str, Any], max_trials: int, uncounted: int = 0) -> int:
    """How many trials a study runs in all: its budget, plus the ``uncounted`` trials its
    budget leaves out (cut short by a stop, copied from another study), never fewer than have
    run: ``4/4 done``, not ``4/2``, for a study of 2 trials resumed after a stop cut 2 short."""
    counts: Mapping[str, int] = study["trial_counts"]
    ran = sum(counts.get(s, 0) for s in (*TRIAL_DONE, "RUNNING"))
    return max(max_trials + uncounted, ran)


def progress_text(study: Mapping[str, Any], total: int, show_best: bool = True) -> str:
    """``5/8 done · 2 running · 3 complete · 0 pruned · 0 failed · best 0.9556``: finished
    trials of the ``total`` (:func:`planned`), those running (when any), each outcome, the
    best value (left out for several objectives: they have a front, not one best)."""
    counts = study["trial_counts"]
    done = sum(counts.get(s, 0) for s in TRIAL_DONE)
    parts = [f"{done}/{total} done"]
    if counts.get("RUNNING"):
        parts.append(f"{counts['RUNNING']} running")
    parts += [
        f"{counts.get('COMPLETE', 0)} complete",
        f"{counts.get('PRUNED', 0)} pruned",
        f"{counts.get('FAIL', 0)} failed",
    ]
    if show_best:
        parts.append(f"best {number(study['best_value'])}")
    return " · ".join(parts)


def status_line(study: Mapping[str, Any], total: int, show_best: bool = True) -> str:
    """``[running] 5/8 done · … · best 0.9556 · elapsed 0:01:15``: a study at a glance."""
    if "trial_counts" not in study:  # the end of a deleted study's stream
        return f"[{study['status']}]"
    text = progress_text(study, total, show_best)
    return f"[{study['status']}] {text} · elapsed {elapsed(study)}"


def trial_line(trial: Mapping[str, Any]) -> str:
    """``trial 3 COMPLETE value=0.9512``, ``trial 4 FAIL (non-finite loss at epoch 3)``."""
    value = "" if trial["value"] is None else f" value={trial_value(trial)}"
    reason = f" ({trial['fail_reason']})" if trial["fail_reason"] else ""
    return f"trial {trial['number']} {trial['state']}{value}{reason}"


BAR_WIDTH = 20


class LiveLine:
    """The live line of a study, drawn at the console's width each time it refreshes (the
    elapsed time goes on between events)."""

    def __init__(self, total: int, show_best: bool) -> None:
        self.total = total
        self.show_best = show_best
        self.study: Mapping[str, Any] = {
            "status": "pending",
            "trial_counts": {},
            "best_value": None,
        }

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.fit(options.max_width)

    def fit(self, width: int) -> Text:
        """The line in ``width`` columns: the bar shrinks, then goes, then the elapsed time
        and the status word; only then is the text cut, with …."""
        counts = self.study["trial_counts"]
        done = sum(counts.get(s, 0) for s in TRIAL_DONE)
        text = progress_text(self.study, self.total, self.show_best)
        status = Text(self.study["status"], style="bold")
        clock = Text(f" · elapsed {elapsed(self.study)}", style="progress.elapsed")
        room = width - len(status) - len(text) - len(clock) - 2
        if room >= 10:
            bar = _bar(done, self.total, min(BAR_WIDTH, room))
            return Text.assemble(status, " ", bar, " ", text, clock)
        for line in (Text.assemble(status, " ", text, clock), Text.assemble(status, " ", text)):
            if len(line) <= width:
                return line
        line = Text(text)
        line.truncate(width, overflow="ellipsis")
        return line


def _bar(done: int, total: int, width: int) -> Text:
    filled = width if total <= 0 else min(width, round(width * done / total))
    style = "bar.finished" if filled == width else "bar.complete"
    return Text.assemble(("━" * filled, style), ("━" * (width - filled), "bar.back"))


class ProgressView:
    """Shows a study's events, live on a terminal or a line at a time.

    Args:
        max_trials: the study's budget (with the trials it leaves out, the bar's length).
        live: draw a live bar (a terminal); otherwise print a line per change.
        echo: how lines are printed (each one flushed).
        console: where the live bar is drawn (default: standard output).
        show_best: show the best value (one objective).
    """

    def __init__(
        self,
        max_trials: int,
        live: bool,
        echo: Callable[[str], Any],
        console: Console | None = None,
        show_best: bool = True,
    ) -> None:
        self._echo = echo
        self._max_trials = max_trials
        self._show_best = show_best
        self._status: str | None = None
        self._held: Mapping[str, Any] | None = None  # a status line waiting for its trials
        self._told: set[int] = set()
        self._uncounted: set[int] = set()  # trials the budget leaves out
        self._study: Mapping[str, Any] | None = None
        self._line_shown = LiveLine(max_trials, show_best)
        self._live: Live | None = None
        if live:
            self._live = Live(self._line_shown, console=console or Console(), refresh_per_second=4)

    def __enter__(self) -> Self:
        if self._live is not None:
            self._live.start(refresh=True)  # drawn at once, before the first event
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()

    def show(self, event: Event) -> None:
        """Take one event of the study's stream."""
        if event.kind == "trial":
            self._count(event.data)
        elif event.kind in ("study", "end") and "trial_counts" in event.data:
            self._study = event.data
        if self._live is None:
            for line in self._lines(event):
                self._echo(line)
        elif self._study is not None and event.kind != "epoch":
            self._line_shown.study = self._study
            self._line_shown.total = self._total(self._study)
            self._live.refresh()

    def _count(self, trial: Mapping[str, Any]) -> None:
        """Note whether the budget counts a trial (a cut-short one lengthens the bar)."""
        if budget_counts(trial) or trial["state"] == "WAITING":
            self._uncounted.discard(trial["number"])
        else:
            self._uncounted.add(trial["number"])

    def _total(self, study: Mapping[str, Any]) -> int:
        return planned(study, self._max_trials, len(self._uncounted))

    def _lines(self, event: Event) -> list[str]:
        """The lines an event prints without a terminal. The server sends a look's study
        event before its trials: a new status's line waits for them, so that no line counts
        a trial whose own line comes after it."""
        lines = []
        if self._held is not None and event.kind != "trial":
            lines.append(status_line(self._held, self._total(self._held), self._show_best))
            self._held = None
        data = event.data
        if event.kind == "end":
            total = self._total(data) if "trial_counts" in data else 0
            lines.append(status_line(data, total, self._show_best))
        elif event.kind == "study" and data["status"] != self._status:
            self._status = data["status"]
            # An ended study's line is the end event's, after the study's last trials.
            self._held = None if self._status in FINISHED else data
        elif event.kind == "trial" and data["state"] in TRIAL_DONE:
            lines += self._tell(data)
        return lines

    def _tell(self, trial: Mapping[str, Any]) -> list[str]:
        """A finished trial's line, once: a stream opened again tells it again."""
        if trial["number"] in self._told:
            return []
        self._told.add(trial["number"])
        return [trial_line(trial)]
