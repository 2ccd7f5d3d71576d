"""Typed application keys for resources shared by several services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from pymongo.asynchronous.database import AsyncDatabase

if TYPE_CHECKING:
    from shared.health import ReadinessChecks
    from shared.messaging import Broker
    from shared.storage import Storage

MONGO_DB: web.AppKey[AsyncDatabase[dict[str, object]]] = web.AppKey("mongo_db", AsyncDatabase)
BROKER: web.AppKey[Broker] = web.AppKey("broker")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
METRICS_REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry", CollectorRegistry)
READINESS: web.AppKey[ReadinessChecks] = web.AppKey("readiness")
#: Documents with events still to publish, by collection (set by each outbox's sweep).
OUTBOX_BACKLOG: web.AppKey[Gauge] = web.AppKey("outbox_backlog", Gauge)
