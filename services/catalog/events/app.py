"""Live events' part of the catalog app: the stream route, the log's consumer and its
retention sweep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from services.catalog.events.consumers import event_log_subscription
from services.catalog.events.repository import EventLogRepository
from services.catalog.events.routes import routes
from services.catalog.events.service import LiveEvents
from services.catalog.hosting.repository import VideoRepository
from services.catalog.keys import EVENT_STREAMS_CLOSING, HOSTING_SERVICE, LIVE_EVENTS
from services.catalog.settings import CatalogSettings
from services.catalog.trimming.repository import TrimRepository
from services.catalog.webhooks.sources import EventSources
from shared.keys import BROKER, MONGO_DB
from shared.lifecycle import CleanupContext, periodic_task_context


def add_events(app: web.Application, settings: CatalogSettings) -> None:
    """Serve `/api/v1/users/events` from `app` and log the events it streams (`app`
    already holds Mongo, the broker and the hosting service)."""
    app[EVENT_STREAMS_CLOSING] = asyncio.Event()
    app.on_shutdown.append(_close_streams)
    app.cleanup_ctx.append(_events_context(settings))
    app.cleanup_ctx.append(
        periodic_task_context(
            "event-log-retention",
            settings.event_log_sweep_interval_seconds,
            lambda app: app[LIVE_EVENTS].expire(),
        )
    )
    app.add_routes(routes)


async def _close_streams(app: web.Application) -> None:
    """Open streams end (clients reconnect elsewhere with `Last-Event-ID`)."""
    app[EVENT_STREAMS_CLOSING].set()


def _events_context(settings: CatalogSettings) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        db = app[MONGO_DB]
        repository = EventLogRepository(db)
        await repository.ensure_indexes()
        events = LiveEvents(
            repository,
            poll_seconds=settings.event_stream_poll_seconds,
            heartbeat_seconds=settings.event_stream_heartbeat_seconds,
            retention=timedelta(seconds=settings.event_log_retention_seconds),
        )
        app[LIVE_EVENTS] = events
        videos, trims = VideoRepository(db), TrimRepository(db)
        sources = EventSources(videos, trims, app[HOSTING_SERVICE].url_for)
        await app[BROKER].consume(event_log_subscription(events, sources, videos, trims))
        yield

    return context
