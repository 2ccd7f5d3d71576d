"""The transcoder's app factory: a broker worker with health, readiness and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.transcoder.consumers import media_subscriptions
from services.transcoder.settings import TranscoderSettings
from shared.app_factory import new_service_app
from shared.keys import BROKER
from shared.lifecycle import broker_context, storage_context

SERVICE = "transcoder"


def create_app(settings: TranscoderSettings) -> web.Application:
    app = new_service_app(settings, errors={})
    app.cleanup_ctx.append(storage_context(settings))
    app.cleanup_ctx.append(
        broker_context(settings, SERVICE, grace_seconds=settings.shutdown_grace_seconds)
    )

    async def queues(app: web.Application) -> AsyncIterator[None]:
        for subscription in media_subscriptions():
            await app[BROKER].declare(subscription)
        yield

    app.cleanup_ctx.append(queues)
    return app
