"""Typed application keys of the catalog."""

from __future__ import annotations

from aiohttp import web

from services.catalog.hosting_service import HostingService
from services.catalog.trimming_service import TrimmingService
from services.catalog.upload_reconciler import UploadReconciler
from shared.outbox import OutboxRelay

HOSTING: web.AppKey[HostingService] = web.AppKey("hosting", HostingService)
RECONCILER: web.AppKey[UploadReconciler] = web.AppKey("reconciler", UploadReconciler)
VIDEO_OUTBOX: web.AppKey[OutboxRelay] = web.AppKey("video_outbox", OutboxRelay)
TRIMMING: web.AppKey[TrimmingService] = web.AppKey("trimming", TrimmingService)
TRIM_OUTBOX: web.AppKey[OutboxRelay] = web.AppKey("trim_outbox", OutboxRelay)
