"""The catalog service's app factory: the stores, the users it knows of, and its two
APIs, each added by its own sub-package (`hosting/`, `trimming/`), plus the webhooks
that tell their owners about results (`webhooks/`) and the live event stream
(`events/`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from aiohttp import web

from services.catalog.errors import (
    InvalidCursor,
    InvalidUploadRequest,
    PlaylistLinkRefused,
    RequestNotFailed,
    StillProcessing,
    TrimRequestNotFound,
    UploadExpired,
    UploadGone,
    UploadIncomplete,
    UploadTooLarge,
    UserNotFound,
    VideoIsPrivate,
    VideoNotFailed,
    VideoNotFound,
)
from services.catalog.events.app import add_events
from services.catalog.hosting.app import add_hosting
from services.catalog.job_slots import JobSlots
from services.catalog.keys import HOSTING_SERVICE, JOB_SLOTS, TRIMMING_SERVICE, USERS
from services.catalog.settings import CatalogSettings
from services.catalog.trimming.app import add_trimming
from services.catalog.users import UserDirectory, users_subscription
from services.catalog.webhooks.app import add_webhooks
from services.catalog.webhooks.errors import TooManyWebhooks, UnsafeWebhookUrl, WebhookNotFound
from shared.app_factory import new_service_app
from shared.http import ErrorMapping
from shared.keys import BROKER, MONGO_DB
from shared.lifecycle import (
    CleanupContext,
    broker_context,
    mongo_context,
    periodic_task_context,
    storage_context,
)

SERVICE = "catalog"
#: How often held jobs of owners with free slots are sent (besides at every job's end).
FAIR_SHARE_SWEEP_SECONDS = 2.0

ERRORS: dict[type[Exception], ErrorMapping] = {
    # hosting (FastAPI style)
    VideoNotFound: ErrorMapping(404),
    UserNotFound: ErrorMapping(404),
    VideoIsPrivate: ErrorMapping(403),
    StillProcessing: ErrorMapping(425),
    VideoNotFailed: ErrorMapping(409),
    UploadGone: ErrorMapping(409),
    UploadExpired: ErrorMapping(410),
    UploadIncomplete: ErrorMapping(409),
    InvalidUploadRequest: ErrorMapping(400),
    InvalidCursor: ErrorMapping(400),
    PlaylistLinkRefused: ErrorMapping(403),
    # trimming (JSON:API)
    TrimRequestNotFound: ErrorMapping(404, bare_html=True),
    RequestNotFailed: ErrorMapping(422, pointer="/data/attributes/status"),
    UploadTooLarge: ErrorMapping(413),
    # webhooks (JSON:API)
    WebhookNotFound: ErrorMapping(404, bare_html=True),
    UnsafeWebhookUrl: ErrorMapping(422, pointer="/data/attributes/url"),
    TooManyWebhooks: ErrorMapping(409),
}


def create_app(settings: CatalogSettings) -> web.Application:
    app = new_service_app(settings, errors=ERRORS)
    app.cleanup_ctx.append(mongo_context(settings, SERVICE))
    app.cleanup_ctx.append(storage_context(settings))
    app.cleanup_ctx.append(broker_context(settings, SERVICE))
    app.cleanup_ctx.append(_users_context)
    app.cleanup_ctx.append(_job_slots_context(settings))
    add_hosting(app, settings)
    add_trimming(app, settings)
    add_webhooks(app, settings)
    add_events(app, settings)
    app.cleanup_ctx.append(
        periodic_task_context("fair-share", FAIR_SHARE_SWEEP_SECONDS, _dispatch_held)
    )
    return app


async def _users_context(app: web.Application) -> AsyncIterator[None]:
    users = UserDirectory(app[MONGO_DB])
    app[USERS] = users
    await app[BROKER].consume(users_subscription(users))
    yield


def _job_slots_context(settings: CatalogSettings) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        slots = JobSlots(app[MONGO_DB], settings.jobs_per_owner_in_flight)
        await slots.ensure_indexes()
        app[JOB_SLOTS] = slots
        yield

    return context


async def _dispatch_held(app: web.Application) -> None:
    """The fair share's backstop: free the slots of jobs that are no longer at the
    transcoder (a crash between a job's end and its release), and send held jobs of
    owners with free slots (a slot freed by one API's job serves the other's too)."""
    hosting, trimming = app[HOSTING_SERVICE], app[TRIMMING_SERVICE]
    settled = datetime.now(UTC) - timedelta(seconds=FAIR_SHARE_SWEEP_SECONDS)
    for job in await app[JOB_SLOTS].jobs(taken_before=settled):
        kind, _, job_id = job.partition(":")
        sent = hosting.is_sent if kind == "video" else trimming.is_sent
        if not await sent(job_id):
            await app[JOB_SLOTS].release(job)
    for owner in {*await hosting.owners_with_held(), *await trimming.owners_with_held()}:
        await hosting.dispatch(owner)
        await trimming.dispatch(owner)
