"""Webhooks' part of the catalog app: endpoints, the result events that feed them, the
delivery worker and its HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
from aiohttp import web

from services.catalog.hosting.repository import VideoRepository
from services.catalog.keys import HOSTING_SERVICE, WEBHOOK_DELIVERER, WEBHOOK_SERVICE
from services.catalog.settings import CatalogSettings
from services.catalog.trimming.repository import TrimRepository
from services.catalog.webhooks.address_guard import AddressGuard, GuardedResolver
from services.catalog.webhooks.consumers import webhook_events_subscription
from services.catalog.webhooks.delivery import DeliveryPolicy, WebhookDeliverer
from services.catalog.webhooks.repository import WebhookRepository
from services.catalog.webhooks.routes import routes
from services.catalog.webhooks.service import WebhookService
from services.catalog.webhooks.sources import EventSources
from shared.keys import BROKER, MONGO_DB
from shared.lifecycle import CleanupContext, periodic_task_context

#: Deliveries one replica sends at once.
DELIVERY_BATCH = 16
#: A claimed delivery is held this much longer than one request may take.
LEASE_MARGIN_SECONDS = 45.0


def add_webhooks(app: web.Application, settings: CatalogSettings) -> None:
    """Serve `/api/v1/users/webhooks` from `app` and deliver to the endpoints (`app`
    already holds Mongo, the broker and the hosting service)."""
    app.cleanup_ctx.append(_webhooks_context(settings))
    app.cleanup_ctx.append(
        periodic_task_context(
            "webhook-delivery",
            settings.webhook_delivery_interval_seconds,
            lambda app: app[WEBHOOK_DELIVERER].run_once(),
        )
    )
    app.add_routes(routes)


def _webhooks_context(settings: CatalogSettings) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        db = app[MONGO_DB]
        repository = WebhookRepository(db)
        await repository.ensure_indexes()
        guard = AddressGuard(allow_private=settings.webhook_private_targets_allowed)
        webhooks = WebhookService(
            repository, guard, max_per_user=settings.webhook_max_endpoints_per_user
        )
        app[WEBHOOK_SERVICE] = webhooks
        timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(guard))
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            app[WEBHOOK_DELIVERER] = WebhookDeliverer(
                repository,
                session,
                guard,
                DeliveryPolicy(
                    retry_schedule=settings.webhook_retry_schedule_seconds,
                    lease=timedelta(
                        seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
                    ),
                    batch=DELIVERY_BATCH,
                ),
            )
            sources = EventSources(
                VideoRepository(db), TrimRepository(db), app[HOSTING_SERVICE].url_for
            )
            await app[BROKER].consume(webhook_events_subscription(webhooks, sources))
            yield

    return context
