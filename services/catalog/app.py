"""The catalog service's app factory: the stores, the users it knows of, and its two
APIs, each added by its own sub-package (`hosting/`, `trimming/`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.catalog.errors import (
    InvalidCursor,
    InvalidUploadRequest,
    MalformedUpload,
    RequestNotFailed,
    StillProcessing,
    TrimRequestNotFound,
    UploadGone,
    UploadTooLarge,
    UserNotFound,
    VideoIsPrivate,
    VideoNotFailed,
    VideoNotFound,
)
from services.catalog.hosting.app import add_hosting
from services.catalog.keys import USERS
from services.catalog.settings import CatalogSettings
from services.catalog.trimming.app import add_trimming
from services.catalog.users import UserDirectory, users_subscription
from shared.app_factory import new_service_app
from shared.http import ErrorMapping
from shared.keys import BROKER, MONGO_DB
from shared.lifecycle import broker_context, mongo_context, storage_context

SERVICE = "catalog"

ERRORS: dict[type[Exception], ErrorMapping] = {
    # hosting (FastAPI style)
    VideoNotFound: ErrorMapping(404),
    UserNotFound: ErrorMapping(404),
    VideoIsPrivate: ErrorMapping(403),
    StillProcessing: ErrorMapping(425),
    VideoNotFailed: ErrorMapping(409),
    UploadGone: ErrorMapping(409),
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
    app.cleanup_ctx.append(_users_context)
    add_hosting(app, settings)
    add_trimming(app, settings)
    return app


async def _users_context(app: web.Application) -> AsyncIterator[None]:
    users = UserDirectory(app[MONGO_DB])
    app[USERS] = users
    await app[BROKER].consume(users_subscription(users))
    yield
