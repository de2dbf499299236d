"""Events: the live SSE stream (with lossless resume) and the stored log as JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from hangar.api.auth import Reader
from hangar.api.context import HangarDep
from hangar.api.schemas import MAX_INTEGER, EventOut
from hangar.service.errors import InvalidInputError
from hangar.service.events import EventRecord
from hangar.service.machines import MachineService

router = APIRouter(prefix="/api/v1/events", tags=["events"])

REPLAY_PAGE = 500


def _sse(event: EventRecord) -> ServerSentEvent:
    return ServerSentEvent(
        id=str(event.id),
        event=event.kind,
        data=EventOut.model_validate(event).model_dump_json(),
    )


async def event_stream(
    machines: MachineService, after: int | None, machine_id: str | None
) -> AsyncIterator[ServerSentEvent]:
    """Every event after `after` (stored ones first), then live ones; none lost, none twice.

    Subscribing before reading the database means an event committed during the replay is in the
    subscription too; events at or below the last id sent are skipped."""
    with machines.bus.subscribe() as subscription:
        last = after
        while last is not None:
            page = await machines.list_events(
                after=last, machine_id=machine_id, limit=REPLAY_PAGE, newest_first=False
            )
            for event in page:
                yield _sse(event)
                last = event.id
            if len(page) < REPLAY_PAGE:
                break
        while True:
            live = await subscription.get()
            if live is None:  # the server is shutting down
                return
            if last is not None and live.id <= last:
                continue
            if machine_id and live.machine_id != machine_id:
                continue
            yield _sse(live)
            last = live.id


@router.get(
    "",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-Sent Events; each `data:` is an Event as JSON",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def stream_events(
    _: Reader,
    hangar: HangarDep,
    machine_id: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_INTEGER)] = None,
    last_event_id: Annotated[
        str,
        # The pattern is for the document (HTTP strips the blanks around a header value); the
        # handler's check gives the message. Empty is none.
        Header(max_length=32, json_schema_extra={"pattern": "^[0-9]*$"}),
    ] = "",
) -> EventSourceResponse:
    if last_event_id.strip():
        try:
            after = int(last_event_id)
        except ValueError:
            after = -1
        if not 0 <= after <= MAX_INTEGER:
            raise InvalidInputError(
                "Last-Event-ID", f"must be an event id (an integer), not {last_event_id!r}"
            )
    return EventSourceResponse(
        event_stream(hangar.machines, after, machine_id),
        ping=hangar.settings.sse_heartbeat_seconds,
    )


@router.get("/log")
async def event_log(
    _: Reader,
    hangar: HangarDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_INTEGER)] = None,
    machine_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[EventOut]:
    events = await hangar.machines.list_events(limit=limit, before=before, machine_id=machine_id)
    return [EventOut.model_validate(e) for e in events]
