"""Finds finished uploads by listing the incoming prefix, for stores (or moments)
without notifications, and cleans up what uploads leave behind.

One listing per round, whatever the number of pending uploads: the listing is
matched against the pending videos in one query. `incoming/` holds only uploads
that were not processed yet (the transcoder removes an upload once it processed it)
and failed ones, kept for a retry until their retention runs out, so the listing
stays small.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from services.catalog.hosting.repository import VideoRepository
from services.catalog.hosting.service import HostingService
from shared.object_keys import INCOMING_PREFIX
from shared.storage import Storage

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    arrived: int
    expired: int
    orphans_removed: int
    tombstones_purged: int
    failed_sources_removed: int
    multipart_aborted: int


class UploadReconciler:
    def __init__(
        self,
        storage: Storage,
        videos: VideoRepository,
        hosting: HostingService,
        *,
        orphan_age: timedelta,
        failed_source_retention: timedelta,
    ) -> None:
        self._storage = storage
        self._videos = videos
        self._hosting = hosting
        self._orphan_age = orphan_age
        self._failed_source_retention = failed_source_retention

    async def run_once(self) -> ReconcileReport:
        now = datetime.now(UTC)
        objects = {o.key: o for o in await self._storage.list(INCOMING_PREFIX)}
        arrived = 0
        for video in await self._videos.pending_with_keys(list(objects)):
            stored = objects[video.upload_key]
            if await self._hosting.upload_arrived(stored.key, stored.size, stored.last_modified):
                arrived += 1
        expired = 0
        for video in await self._videos.expired_pending(now):
            if video.upload_key not in objects and await self._hosting.expire_pending(video):
                expired += 1
        # Objects no video claims (a pending upload deleted or expired before the
        # file came) are removed once no policy that could still be in use names them.
        known = await self._videos.known_upload_keys(list(objects))
        orphans = [
            key
            for key, stored in objects.items()
            if key not in known and now - stored.last_modified > self._orphan_age
        ]
        await self._storage.remove(orphans)
        # Failed uploads keep their file for a retry, for a while.
        retired = await self._videos.failed_upload_keys(
            list(objects), failed_before=now - self._failed_source_retention
        )
        await self._storage.remove(retired)
        aborted = await self._abort_abandoned_multipart_uploads(now)
        report = ReconcileReport(
            arrived,
            expired,
            len(orphans),
            await self._videos.purge_tombstones(),
            len(retired),
            aborted,
        )
        if any(vars(report).values()):
            log.info("upload reconciler", **vars(report))
        return report

    async def _abort_abandoned_multipart_uploads(self, now: datetime) -> int:
        """Abort the multipart uploads no pending video within its time claims: their
        parts take space and, unlike a POST, never become an object by themselves
        (MinIO's lifecycle rule does not expire them). One of a video that expired or
        was deleted goes at once; one no video names yet (it is begun just before its
        video is stored) only once its time would be up."""
        uploads = await self._storage.open_multipart_uploads(INCOMING_PREFIX)
        live = await self._videos.live_multipart_uploads([u.upload_id for u in uploads], now)
        known = await self._videos.known_upload_keys([u.key for u in uploads])
        abandoned = [
            upload
            for upload in uploads
            if upload.upload_id not in live
            and (upload.key in known or now - upload.initiated > self._orphan_age)
        ]
        for upload in abandoned:
            await self._storage.abort_multipart(upload.key, upload.upload_id)
        return len(abandoned)
