"""Shapes of live events: the progress payload, the resume point, the SSE wire format."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.catalog.events.repository import LoggedEvent

CONTENT_TYPE = "text/event-stream"
#: The event type of the transcoder's `job.progressed` on the stream.
JOB_PROGRESS = "job.progress"
HEARTBEAT = b": keep-alive\n\n"
#: Written as soon as the stream opens, so headers reach the client (and through the
#: gateway) before the first event.
OPENED = b": connected\n\n"


class JobProgress(BaseModel):
    """`data` of a `job.progress` event."""

    model_config = ConfigDict(frozen=True)

    job: Literal["video", "trim"]
    id: str
    fraction: float = Field(ge=0, le=1)
    eta_seconds: float | None = None


class EventStreamQuery(BaseModel):
    """The resume point for clients that cannot send `Last-Event-ID` (EventSource
    polyfills); the header wins when both are sent."""

    last_event_id: int | None = Field(default=None, ge=0)


def resume_point(header: str | None, query: str | None) -> int | None:
    """The id to resume after; None (start from now) without one or with one that is
    not a whole number."""
    for value in (header, query):
        if value is not None:
            value = value.strip()
            return max(int(value), 0) if value.isdecimal() else None
    return None


def sse_message(event: LoggedEvent) -> bytes:
    return f"id: {event.seq}\nevent: {event.event_type}\ndata: {event.body}\n\n".encode()
