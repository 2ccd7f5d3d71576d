"""Hosting's part of the catalog app: its domain, consumers, background tasks and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from services.catalog.hosting.consumers import (
    storage_events_subscription,
    video_results_subscription,
)
from services.catalog.hosting.cursor import CursorCodec
from services.catalog.hosting.playlist_links import PlaylistLinks
from services.catalog.hosting.repository import VideoRepository
from services.catalog.hosting.routes import routes
from services.catalog.hosting.service import HostingPolicy, HostingService
from services.catalog.hosting.upload_reconciler import UploadReconciler
from services.catalog.keys import (
    HOSTING_OUTBOX,
    HOSTING_SERVICE,
    JOB_SLOTS,
    RECONCILER,
    USERS,
)
from services.catalog.settings import CatalogSettings
from shared.keys import BROKER, MONGO_DB, OUTBOX_BACKLOG, STORAGE
from shared.lifecycle import CleanupContext, outbox_sweep_context, periodic_task_context
from shared.outbox import OutboxRelay


def add_hosting(app: web.Application, settings: CatalogSettings) -> None:
    """Serve the hosting API from `app` (which already holds Mongo, the broker, storage
    and the user directory)."""
    app.cleanup_ctx.append(_hosting_context(settings))
    app.cleanup_ctx.append(
        periodic_task_context(
            "upload-reconciler",
            settings.upload_reconcile_interval_seconds,
            lambda app: app[RECONCILER].run_once(),
        )
    )
    stall = timedelta(seconds=settings.job_stall_seconds)
    app.cleanup_ctx.append(
        periodic_task_context(
            "hosting-stall-sweep",
            settings.stall_sweep_interval_seconds,
            lambda app: app[HOSTING_SERVICE].sweep_stalled(stall),
        )
    )
    app.cleanup_ctx.append(outbox_sweep_context("hosting", HOSTING_OUTBOX))
    app.add_routes(routes)


def _hosting_policy(settings: CatalogSettings) -> HostingPolicy:
    return HostingPolicy(
        max_size_bytes=settings.upload_max_size_bytes,
        valid_file_types=settings.upload_valid_file_types,
        upload_ttl=timedelta(seconds=settings.upload_policy_ttl_seconds),
        part_size=settings.upload_part_size_bytes,
        url_ttl=timedelta(seconds=settings.presigned_url_ttl_seconds),
        page_size=settings.page_size,
        public_url=settings.public_url.rstrip("/"),
    )


def _hosting_context(settings: CatalogSettings) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        broker, storage = app[BROKER], app[STORAGE]
        videos = VideoRepository(app[MONGO_DB])
        outbox = OutboxRelay(videos.collection, broker, backlog=app[OUTBOX_BACKLOG])
        await videos.ensure_indexes()
        await outbox.ensure_indexes()
        policy = _hosting_policy(settings)
        hosting = HostingService(
            videos,
            app[USERS],
            storage,
            outbox,
            CursorCodec(settings.internal_secret.get_secret_value()),
            policy,
            app[JOB_SLOTS],
            PlaylistLinks(settings.internal_secret.get_secret_value()),
        )
        app[HOSTING_SERVICE] = hosting
        app[HOSTING_OUTBOX] = outbox
        app[RECONCILER] = UploadReconciler(
            storage,
            videos,
            hosting,
            orphan_age=policy.upload_ttl,
            failed_source_retention=timedelta(seconds=settings.failed_source_retention_seconds),
        )
        await broker.consume(video_results_subscription(hosting))
        await broker.consume(
            storage_events_subscription(
                hosting, exchange=settings.storage_events_exchange, bucket=storage.bucket
            )
        )
        yield

    return context
