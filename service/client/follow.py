"""Following a study to its end, as ``watch``, ``submit --wait`` and ``resume --wait`` do:
the live view while it runs, then the same final lines (its status, its best trial or trials).
"""

import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import typer

from service.client.api import FINISHED
from service.client.events import Event
from service.client.tables import best_line

if TYPE_CHECKING:
    from service.client.api import Client
    from service.client.external import RemoteStudy


def events(client: "Client", study_id: int) -> Iterator[Event]:
    """A study's events until its ``end``. A dropped stream (the server restarted, or closed a
    long stream) is opened again; its first events are the study so far again."""
    from service.client.api import Unreachable

    while True:
        try:
            for event in client.events(study_id):
                yield event
                if event.kind == "end":
                    return
        except Unreachable:
            pass  # the server is away: look again in a moment
        time.sleep(1)


def follow(client: "Client", study: Mapping[str, Any]) -> dict[str, Any]:
    """Show a study's events until it finishes: a live line on a terminal, a line per change
    otherwise. Returns the study's final ``end`` event."""
    from service.client.progress import ProgressView  # rich: loaded to draw, not before

    max_trials = study["spec"]["budget"]["max_trials"]
    one_objective = len(study["spec"]["objectives"]) == 1
    live = sys.stdout.isatty()
    final: dict[str, Any] = {}
    with ProgressView(max_trials, live=live, echo=typer.echo, show_best=one_objective) as view:
        for event in events(client, study["id"]):
            view.show(event)
            final = event.data
    return final


def print_events(client: "Client", study: Mapping[str, Any]) -> None:
    """``watch --json``: each event as one line of JSON, ``{"event": kind, "data": ...}``,
    until the end (a study that ended: its ``end`` at once). Exits 1 when no trial completed;
    Ctrl-C stops it (exit 130)."""
    final: Mapping[str, Any] = study
    source: Iterable[Event] = (
        [Event("end", dict(study))] if study["status"] in FINISHED else events(client, study["id"])
    )
    try:
        for event in source:
            typer.echo(json.dumps({"event": event.kind, "data": event.data}))
            final = event.data
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if not final.get("trial_counts", {}).get("COMPLETE"):
        raise typer.Exit(1)


def finish(client: "Client", study: Mapping[str, Any], final: Mapping[str, Any]) -> None:
    """The final lines: ``study 5 completed: max_trials reached``, then the best trial (or,
    for several objectives, each trial of the Pareto front). Exits 1 when no trial completed
    (or the study was deleted meanwhile)."""
    reason = f": {final['status_reason']}" if final.get("status_reason") else ""
    typer.echo(f"study {study['id']} {final['status']}{reason}")
    if not final.get("trial_counts", {}).get("COMPLETE"):
        raise typer.Exit(1)
    for trial in client.best_trials(study["id"]):
        typer.echo(best_line(study["spec"]["objectives"], trial))


def follow_to_end(client: "Client", study: Mapping[str, Any]) -> None:
    """Follow ``study`` (live) until it ends and print the final lines; a study that ended
    already shows its final line at once. Ctrl-C stops following, not the study (exit 130)."""
    from service.client.progress import planned, status_line

    one_objective = len(study["spec"]["objectives"]) == 1
    if study["status"] in FINISHED:
        total = planned(study, study["spec"]["budget"]["max_trials"])
        typer.echo(status_line(study, total, one_objective))
        final: Mapping[str, Any] = study
    else:
        try:
            final = follow(client, study)
        except KeyboardInterrupt:
            typer.echo(
                f"stopped watching; study {study['id']} goes on "
                f"(tuneforge watch {study['id']} shows it again)",
                err=True,
            )
            raise typer.Exit(130) from None
    finish(client, study, final)


def wait_until_ended(client: "Client", study_id: int, poll_s: float = 0.5) -> "RemoteStudy":
    """The study once it has ended (stopped, completed or failed), read every ``poll_s``;
    Ctrl-C stops waiting (exit 130), not the study."""
    try:
        while (study := client.study(study_id))["status"] not in FINISHED:
            time.sleep(poll_s)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    return study
