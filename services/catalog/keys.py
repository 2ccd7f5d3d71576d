"""Typed application keys of the catalog."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.catalog.events.service import LiveEvents
from services.catalog.hosting.service import HostingService
from services.catalog.hosting.upload_reconciler import UploadReconciler
from services.catalog.job_slots import JobSlots
from services.catalog.trimming.service import TrimmingService
from services.catalog.users import UserDirectory
from services.catalog.webhooks.delivery import WebhookDeliverer
from services.catalog.webhooks.service import WebhookService
from shared.outbox import OutboxRelay

USERS: web.AppKey[UserDirectory] = web.AppKey("users", UserDirectory)
JOB_SLOTS: web.AppKey[JobSlots] = web.AppKey("job_slots", JobSlots)
HOSTING_SERVICE: web.AppKey[HostingService] = web.AppKey("hosting_service", HostingService)
RECONCILER: web.AppKey[UploadReconciler] = web.AppKey("reconciler", UploadReconciler)
HOSTING_OUTBOX: web.AppKey[OutboxRelay] = web.AppKey("hosting_outbox", OutboxRelay)
TRIMMING_SERVICE: web.AppKey[TrimmingService] = web.AppKey("trimming_service", TrimmingService)
TRIMMING_OUTBOX: web.AppKey[OutboxRelay] = web.AppKey("trimming_outbox", OutboxRelay)
WEBHOOK_SERVICE: web.AppKey[WebhookService] = web.AppKey("webhook_service", WebhookService)
WEBHOOK_DELIVERER: web.AppKey[WebhookDeliverer] = web.AppKey("webhook_deliverer", WebhookDeliverer)
LIVE_EVENTS: web.AppKey[LiveEvents] = web.AppKey("live_events", LiveEvents)
#: Set at shutdown: open event streams end.
EVENT_STREAMS_CLOSING: web.AppKey[asyncio.Event] = web.AppKey(
    "event_streams_closing", asyncio.Event
)
