"""HTTP edge of live events: `GET /api/v1/users/events`, a Server-Sent Events stream."""

from __future__ import annotations

from aiohttp import web

from services.catalog.events.schemas import (
    CONTENT_TYPE,
    HEARTBEAT,
    OPENED,
    resume_point,
    sse_message,
)
from services.catalog.events.service import Heartbeat
from services.catalog.keys import EVENT_STREAMS_CLOSING, LIVE_EVENTS
from shared.http import require_user

routes = web.RouteTableDef()

STREAM_HEADERS = {
    "Content-Type": CONTENT_TYPE,
    "Cache-Control": "no-cache",
    # nginx and its kin: pass each message on as it comes
    "X-Accel-Buffering": "no",
}


@routes.get("/api/v1/users/events")
async def live_events(request: web.Request) -> web.StreamResponse:
    owner = require_user(request)
    events = request.app[LIVE_EVENTS]
    closing = request.app[EVENT_STREAMS_CLOSING]
    after = await events.start(
        owner,
        resume_point(request.headers.get("Last-Event-ID"), request.query.get("last_event_id")),
    )
    response = web.StreamResponse(headers=STREAM_HEADERS)
    await response.prepare(request)

    def active() -> bool:
        transport = request.transport
        return not closing.is_set() and transport is not None and not transport.is_closing()

    try:
        await response.write(OPENED)
        async for item in events.follow(owner, after, active):
            await response.write(HEARTBEAT if isinstance(item, Heartbeat) else sse_message(item))
    except ConnectionError:
        pass  # the client went away
    return response
