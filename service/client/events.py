"""A study's live events as the client reads them: server-sent events, parsed."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    """One server-sent event of a study's stream: ``kind`` is ``study``, ``trial``,
    ``epoch`` or ``end``; ``data`` its JSON payload (see ``GET /studies/{id}/events``)."""

    kind: str
    data: dict[str, Any]


def parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events from a stream's lines (comments and keep-alives skipped)."""
    kind, data = "message", list[str]()
    for line in lines:
        if not line:  # a blank line ends an event
            if data:
                yield Event(kind, json.loads("\n".join(data)))
            kind, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)
    if data:
        yield Event(kind, json.loads("\n".join(data)))
