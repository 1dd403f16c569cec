"""``tuneforge submit --wait``'s view of a study's events: a live bar on a terminal (trials by
state, best value, elapsed time), one line per change when the output is a file or a pipe."""

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from service.client.events import Event

_DONE = ("COMPLETE", "PRUNED", "FAIL")


def _started(study: dict[str, Any]) -> float | None:
    started = study.get("started_at")
    return datetime.fromisoformat(started).timestamp() if started else None


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Elapsed(ProgressColumn):
    """Time since the study started (not since this client connected)."""

    def render(self, task: Task) -> Text:
        started = task.fields.get("started")
        ended = task.fields.get("ended")
        if started is None:
            return Text("-:--:--", style="progress.elapsed")
        return Text(_clock((ended or time.time()) - started), style="progress.elapsed")


def summary(study: Mapping[str, Any]) -> str:
    """``[running] complete=3 running=2 failed=0 pruned=1 best=0.9611``."""
    c = study["trial_counts"]
    best = study["best_value"]
    best_s = "-" if best is None else f"{best:.4f}"
    return (
        f"[{study['status']}] complete={c['COMPLETE']} running={c['RUNNING']} "
        f"failed={c['FAIL']} pruned={c['PRUNED']} best={best_s}"
    )


class ProgressView:
    """Shows a study's events.

    Args:
        max_trials: the study's budget (the bar's length).
        live: draw a live bar (a terminal); otherwise print a line per change.
        echo: how lines are printed.
        console: where the live bar is drawn (default: standard output).
    """

    def __init__(
        self,
        max_trials: int,
        live: bool,
        echo: Callable[[str], Any],
        console: Console | None = None,
    ) -> None:
        self._echo = echo
        self._last = ""
        self._progress: Progress | None = None
        self._task: Any = None
        if live:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[status]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TextColumn("best [bold]{task.fields[best]}"),
                _Elapsed(),
                console=console or Console(),
            )
            self._task = self._progress.add_task(
                "study", total=max_trials, status="pending", counts="", best="-", started=None
            )

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def show(self, event: Event) -> None:
        """Take one event of the study's stream."""
        if event.kind in ("study", "end"):
            self._study(event.data)
        elif event.kind == "trial" and self._progress is None and event.data["state"] in _DONE:
            t = event.data
            value = "" if t["value"] is None else f" value={t['value']:.4f}"
            reason = f" ({t['fail_reason']})" if t["fail_reason"] else ""
            self._echo(f"trial {t['number']} {t['state']}{value}{reason}")

    def _study(self, study: dict[str, Any]) -> None:
        started = _started(study)
        if self._progress is not None:
            c = study["trial_counts"]
            best = study["best_value"]
            finished = study.get("finished_at")
            self._progress.update(
                self._task,
                completed=sum(c[s] for s in _DONE),
                status=study["status"],
                counts=f"complete {c['COMPLETE']} running {c['RUNNING']} "
                f"pruned {c['PRUNED']} failed {c['FAIL']}",
                best="-" if best is None else f"{best:.4f}",
                started=started,
                ended=datetime.fromisoformat(finished).timestamp() if finished else None,
            )
            return
        line = summary(study)
        if line != self._last:
            elapsed = "" if started is None else f" elapsed={_clock(time.time() - started)}"
            self._echo(line + elapsed)
            self._last = line
