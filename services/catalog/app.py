"""The catalog service's app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from services.catalog import hosting_routes, trimming_routes
from services.catalog.consumers import (
    storage_events_subscription,
    trim_results_subscription,
    user_subscription,
    video_results_subscription,
)
from services.catalog.cursor import CursorCodec
from services.catalog.errors import (
    InvalidCursor,
    InvalidUploadRequest,
    MalformedUpload,
    RequestNotFailed,
    StillProcessing,
    TrimRequestNotFound,
    UploadTooLarge,
    UserNotFound,
    VideoIsPrivate,
    VideoNotFound,
)
from services.catalog.hosting_service import HostingPolicy, HostingService
from services.catalog.keys import HOSTING, RECONCILER, TRIM_OUTBOX, TRIMMING, VIDEO_OUTBOX
from services.catalog.repository import UserDirectory, VideoRepository
from services.catalog.settings import CatalogSettings
from services.catalog.trim_repository import TrimRepository
from services.catalog.trimming_service import TrimmingService
from services.catalog.upload_reconciler import UploadReconciler
from shared.app_factory import new_service_app
from shared.http import ErrorMapping
from shared.keys import BROKER, MONGO_DB, STORAGE
from shared.lifecycle import (
    broker_context,
    mongo_context,
    periodic_task_context,
    storage_context,
)
from shared.outbox import OutboxRelay

SERVICE = "catalog"
OUTBOX_SWEEP_SECONDS = 15.0

ERRORS: dict[type[Exception], ErrorMapping] = {
    VideoNotFound: ErrorMapping(404),
    UserNotFound: ErrorMapping(404),
    VideoIsPrivate: ErrorMapping(403),
    StillProcessing: ErrorMapping(425),
    InvalidUploadRequest: ErrorMapping(400),
    InvalidCursor: ErrorMapping(400),
    # trimming (JSON:API)
    TrimRequestNotFound: ErrorMapping(404, bare_html=True),
    RequestNotFailed: ErrorMapping(422, pointer="/data/attributes/status"),
    UploadTooLarge: ErrorMapping(413),
    MalformedUpload: ErrorMapping(400),
}


def create_app(settings: CatalogSettings) -> web.Application:
    app = new_service_app(settings, errors=ERRORS)
    app.cleanup_ctx.append(mongo_context(settings, SERVICE))
    app.cleanup_ctx.append(storage_context(settings))
    app.cleanup_ctx.append(broker_context(settings, SERVICE))

    async def domain(app: web.Application) -> AsyncIterator[None]:
        db, broker, storage = app[MONGO_DB], app[BROKER], app[STORAGE]
        users, videos = UserDirectory(db), VideoRepository(db)
        outbox = OutboxRelay(videos.collection, broker)
        await videos.ensure_indexes()
        await outbox.ensure_indexes()
        policy = HostingPolicy(
            max_size_bytes=settings.upload_max_size_bytes,
            valid_file_types=settings.upload_valid_file_types,
            upload_ttl=timedelta(seconds=settings.upload_policy_ttl_seconds),
            url_ttl=timedelta(seconds=settings.presigned_url_ttl_seconds),
            page_size=settings.page_size,
        )
        hosting = HostingService(
            videos,
            users,
            storage,
            outbox,
            CursorCodec(settings.internal_secret.get_secret_value()),
            policy,
        )
        app[HOSTING] = hosting
        app[VIDEO_OUTBOX] = outbox
        app[RECONCILER] = UploadReconciler(storage, videos, hosting, orphan_age=policy.upload_ttl)
        trims = TrimRepository(db)
        trim_outbox = OutboxRelay(trims.collection, broker)
        await trims.ensure_indexes()
        await trim_outbox.ensure_indexes()
        trimming = TrimmingService(
            trims,
            storage,
            trim_outbox,
            url_ttl=policy.url_ttl,
            part_size=settings.trim_upload_part_size,
            max_upload_bytes=settings.trim_max_upload_bytes,
        )
        app[TRIMMING] = trimming
        app[TRIM_OUTBOX] = trim_outbox
        await broker.consume(user_subscription(users))
        await broker.consume(trim_results_subscription(trimming))
        await broker.consume(video_results_subscription(hosting))
        await broker.consume(
            storage_events_subscription(
                hosting, exchange=settings.storage_events_exchange, bucket=storage.bucket
            )
        )
        yield

    app.cleanup_ctx.append(domain)
    app.cleanup_ctx.append(
        periodic_task_context(
            "upload-reconciler",
            settings.upload_reconcile_interval_seconds,
            lambda app: app[RECONCILER].run_once(),
        )
    )
    app.cleanup_ctx.append(
        periodic_task_context("outbox-sweep", OUTBOX_SWEEP_SECONDS, _sweep_outboxes)
    )
    app.add_routes(hosting_routes.routes)
    app.add_routes(trimming_routes.routes)
    return app


async def _sweep_outboxes(app: web.Application) -> None:
    await app[VIDEO_OUTBOX].sweep()
    await app[TRIM_OUTBOX].sweep()
