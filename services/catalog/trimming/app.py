"""Trimming's part of the catalog app: its domain, consumers, background tasks and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from services.catalog.keys import JOB_SLOTS, TRIMMING_OUTBOX, TRIMMING_SERVICE
from services.catalog.settings import CatalogSettings
from services.catalog.trimming.consumers import trim_results_subscription
from services.catalog.trimming.repository import TrimRepository
from services.catalog.trimming.routes import routes
from services.catalog.trimming.service import TrimmingService
from shared.keys import BROKER, MONGO_DB, OUTBOX_BACKLOG, STORAGE
from shared.lifecycle import CleanupContext, outbox_sweep_context, periodic_task_context
from shared.outbox import OutboxRelay


def add_trimming(app: web.Application, settings: CatalogSettings) -> None:
    """Serve the trimming API from `app` (which already holds Mongo, the broker and
    storage)."""
    app.cleanup_ctx.append(_trimming_context(settings))
    stall = timedelta(seconds=settings.job_stall_seconds)
    app.cleanup_ctx.append(
        periodic_task_context(
            "trimming-stall-sweep",
            settings.stall_sweep_interval_seconds,
            lambda app: app[TRIMMING_SERVICE].sweep_stalled(stall),
        )
    )
    app.cleanup_ctx.append(outbox_sweep_context("trimming", TRIMMING_OUTBOX))
    app.add_routes(routes)


def _trimming_context(settings: CatalogSettings) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        trims = TrimRepository(app[MONGO_DB])
        outbox = OutboxRelay(trims.collection, app[BROKER], backlog=app[OUTBOX_BACKLOG])
        await trims.ensure_indexes()
        await outbox.ensure_indexes()
        trimming = TrimmingService(
            trims,
            app[STORAGE],
            outbox,
            url_ttl=timedelta(seconds=settings.presigned_url_ttl_seconds),
            part_size=settings.trim_upload_part_size,
            max_upload_bytes=settings.trim_max_upload_bytes,
            slots=app[JOB_SLOTS],
        )
        app[TRIMMING_SERVICE] = trimming
        app[TRIMMING_OUTBOX] = outbox
        await app[BROKER].consume(trim_results_subscription(trimming))
        yield

    return context
