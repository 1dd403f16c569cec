"""``/api/v1/studies/{id}/events``: a study's trial events as server-sent events."""

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from service.api.deps import CallerDep, Id
from service.api.errors import OVER_LIMIT, non_json_responses
from service.api.routes.trials import own_study
from service.api.schemas.responses import StudyProgress
from service.api.streams import StreamSlots
from service.api.views import trial_public
from service.config import Settings
from service.reports.events import StudyEvent, StudyWatcher
from service.store.keys import Caller, key_active

router = APIRouter(
    prefix="/studies/{study_id}", tags=["studies"], dependencies=[Depends(own_study)]
)


# One server-sent event: its kind, and its data as a JSON text.
_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["study", "trial", "epoch", "end"]},
        "data": {"type": "string", "description": "The event's JSON payload."},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def _stream_slot_free(request: Request, caller: CallerDep) -> Caller:
    """The caller, if its key may open one more stream (a dependency: its 429 is answered
    before the stream's response starts)."""
    request.app.state.streams.check(_slot_key(caller))
    return caller


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={
        **non_json_responses("text/event-stream", "The study's events, as they happen.", _EVENT),
        **OVER_LIMIT,
    },
)
async def study_events(
    study_id: Id,
    request: Request,
    caller: Annotated[Caller, Depends(_stream_slot_free)],
    poll_s: float = Query(0.5, ge=0.1, le=10, description="Seconds between two looks."),
) -> AsyncIterator[ServerSentEvent]:
    """The study's events, live, until it finishes: first the study so far (a ``study``
    event, then a ``trial`` event per trial), then a ``trial`` event whenever a trial
    starts or ends, ``epoch`` events with running trials' newest objective value, ``study``
    events when counts, best value or status change, and ``end`` when it finished.

    Every event's ``data`` is JSON. The stream holds no database connection between looks
    and no request slot. It closes after TUNEFORGE_EVENT_STREAM_MAX_S (proxies and load
    balancers dislike endless responses): a client connects again, and its first events are
    the study so far again.

    A key holds at most TUNEFORGE_MAX_STREAMS_PER_KEY streams at once per API process (one
    more answers 429), and every look checks the key again: revoking it closes its streams."""
    slots: StreamSlots = request.app.state.streams
    key = _slot_key(caller)
    watcher = StudyWatcher(request.app.state.sessionmaker, study_id)
    settings: Settings = request.app.state.settings
    deadline = time.monotonic() + settings.event_stream_max_s

    def look() -> list[StudyEvent] | None:
        if caller.key_id is not None:
            with request.app.state.sessionmaker() as session:
                if not key_active(session, caller.key_id):
                    return None  # revoked since the stream opened
        return watcher.poll()

    if not slots.acquire(key):  # another stream of the key opened since the check
        return
    try:
        while not watcher.ended and time.monotonic() < deadline:
            events = await anyio.to_thread.run_sync(look, limiter=slots.looks)
            if events is None:
                return
            for event in events:
                yield ServerSentEvent(event=event.kind, data=event_json(event))
            if watcher.ended or await request.is_disconnected():
                return
            # Never past the stream's end: the last look is at its deadline, not a poll after.
            await anyio.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))
    finally:
        slots.release(key)


def _slot_key(caller: Caller) -> str:
    return "anonymous" if caller.key_id is None else f"key-{caller.key_id}"


def event_json(event: StudyEvent) -> dict[str, Any]:
    """An event's data as the API shows it: a trial as ``GET .../trials`` does, a study's
    progress as :class:`StudyProgress`."""
    if event.kind == "trial":
        return trial_public(event.data).model_dump(mode="json")
    if event.kind in ("study", "end") and "name" in event.data:
        return StudyProgress(**event.data).model_dump(mode="json")
    return dict(event.data)
