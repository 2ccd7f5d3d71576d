"""The catalog service's app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.catalog.consumers import user_subscription
from services.catalog.repository import UserDirectory
from services.catalog.routes import routes
from services.catalog.settings import CatalogSettings
from shared.app_factory import new_service_app
from shared.keys import BROKER, MONGO_DB
from shared.lifecycle import broker_context, mongo_context, storage_context

SERVICE = "catalog"


def create_app(settings: CatalogSettings) -> web.Application:
    app = new_service_app(settings, errors={})
    app.cleanup_ctx.append(mongo_context(settings, SERVICE))
    app.cleanup_ctx.append(storage_context(settings))

    async def consumers(app: web.Application) -> AsyncIterator[None]:
        users = UserDirectory(app[MONGO_DB])
        await app[BROKER].consume(user_subscription(users))
        yield

    app.cleanup_ctx.append(broker_context(settings, SERVICE))
    app.cleanup_ctx.append(consumers)
    app.add_routes(routes)
    return app
