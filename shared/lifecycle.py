"""`cleanup_ctx` factories: each opens one client when the app starts, stores it under
its typed key, registers its readiness check, and closes it when the app stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web

from shared.config import BrokerSettings, MongoSettings, StorageSettings
from shared.keys import BROKER, METRICS_REGISTRY, MONGO_DB, READINESS, STORAGE
from shared.messaging import connected_broker
from shared.mongo import mongo_database, ping
from shared.outbox import OutboxRelay
from shared.storage import open_storage
from shared.tracing import TRACER_PROVIDER

log = structlog.get_logger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]

#: How often an outbox relay publishes the events its documents still hold.
OUTBOX_SWEEP_SECONDS = 15.0
#: How often the depth of the consumed queues is read for `/metrics`.
QUEUE_DEPTH_SECONDS = 15.0


def mongo_context(settings: MongoSettings, service: str) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with mongo_database(settings, service) as db:
            app[MONGO_DB] = db
            app[READINESS].add("mongo", lambda: ping(db))
            yield

    return context


def broker_context(settings: BrokerSettings, service: str) -> CleanupContext:
    """Connect to the broker. On shutdown consumers stop first; a handler still running
    is cancelled and its message, unacked, goes back to the queue. (The transcoder,
    whose jobs are long, stops its consumers earlier, with a grace period.)"""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async with connected_broker(
            settings, service, app[METRICS_REGISTRY], tracer_provider=app.get(TRACER_PROVIDER)
        ) as broker:
            app[BROKER] = broker

            app[READINESS].add("broker", broker.is_consuming)
            measuring = asyncio.create_task(
                _every("queue-depth", QUEUE_DEPTH_SECONDS, broker.measure_queues)
            )
            yield
            measuring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await measuring
            await broker.stop_consuming()

    return context


def storage_context(settings: StorageSettings) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_storage(settings) as storage:
            app[STORAGE] = storage
            app[READINESS].add("storage", storage.ping)
            yield

    return context


def periodic_task_context(
    name: str, interval_seconds: float, work: Callable[[web.Application], Awaitable[object]]
) -> CleanupContext:
    """Run `work(app)` every `interval_seconds` while the app runs; errors are logged
    and the next round tries again."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_every(name, interval_seconds, lambda: work(app)), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def outbox_sweep_context(name: str, relay: web.AppKey[OutboxRelay]) -> CleanupContext:
    """Sweep the outbox relay stored under `relay` while the app runs."""
    return periodic_task_context(
        f"{name}-outbox-sweep", OUTBOX_SWEEP_SECONDS, lambda app: app[relay].sweep()
    )


async def _every(name: str, interval_seconds: float, work: Callable[[], Awaitable[object]]) -> None:
    """Run `work` every `interval_seconds` until cancelled; errors are logged and the
    next round tries again."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await work()
        except Exception:
            log.exception("periodic task failed", task=name)
