"""The trimming domain: accept a source and its cut, follow the request's status,
restart failed requests, list finished clips. Knows nothing of HTTP or AMQP.

Statuses: scheduled → processing → done | failed; a failed request can go back to
scheduled (restart), which starts a new attempt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.catalog.errors import RequestNotFailed, TrimRequestNotFound
from services.catalog.trim_repository import TrimJob, TrimRepository, TrimStatus
from shared.events import Envelope, JobProgressed, TrimCompleted, TrimFailed, TrimRequested
from shared.outbox import OutboxRelay
from shared.storage import Storage

SOURCES_PREFIX = "sources/"


@dataclass(frozen=True)
class Clip:
    """A finished cut, ready to fetch."""

    video_id: str
    duration_seconds: float
    url: str


@dataclass(frozen=True)
class TrimOrder:
    """A validated trimming request (the HTTP edge has parsed the form)."""

    name: str
    start_seconds: float
    duration_seconds: float


class TrimmingService:
    def __init__(
        self,
        trims: TrimRepository,
        storage: Storage,
        outbox: OutboxRelay,
        *,
        url_ttl: timedelta,
        part_size: int,
        max_upload_bytes: int,
    ) -> None:
        self._trims = trims
        self._storage = storage
        self._outbox = outbox
        self._url_ttl = url_ttl
        self._part_size = part_size
        self.max_upload_bytes = max_upload_bytes

    # -- sources ---------------------------------------------------------------

    @staticmethod
    def new_video_id() -> str:
        return TrimRepository.new_id()

    @staticmethod
    def source_key(video_id: str) -> str:
        return f"{SOURCES_PREFIX}{video_id}"

    async def store_source(
        self, video_id: str, chunks: AsyncIterator[bytes], content_type: str
    ) -> int:
        """Stream an uploaded source into storage; nothing is kept if the stream fails."""
        return await self._storage.put_stream(
            self.source_key(video_id), chunks, content_type=content_type, part_size=self._part_size
        )

    async def discard_source(self, video_id: str) -> None:
        await self._storage.remove([self.source_key(video_id)])

    # -- requests --------------------------------------------------------------

    async def schedule(
        self, user_id: str, video_id: str, order: TrimOrder, *, correlation_id: str | None
    ) -> TrimJob:
        job = TrimJob(
            request_id=self._trims.new_id(),
            video_id=video_id,
            user_id=user_id,
            name=order.name,
            source_key=self.source_key(video_id),
            start_seconds=order.start_seconds,
            duration_seconds=order.duration_seconds,
            status=TrimStatus.SCHEDULED,
            attempt=1,
            created_at=datetime.now(UTC),
        )
        await self._trims.insert(job, [self._requested(job, job.attempt, correlation_id)])
        await self._publish(job.request_id)
        return job

    async def requests(self, user_id: str) -> list[TrimJob]:
        return await self._trims.of_user(user_id)

    async def clips(self, user_id: str) -> list[Clip]:
        return [
            Clip(
                video_id=job.video_id,
                duration_seconds=job.clip_duration_seconds,
                url=self._storage.download_url(job.clip_key, self._url_ttl),
            )
            for job in await self._trims.of_user(user_id, TrimStatus.DONE)
            if job.clip_key is not None and job.clip_duration_seconds is not None
        ]

    async def restart(
        self, user_id: str, request_id: str, *, correlation_id: str | None
    ) -> TrimJob:
        job = await self._trims.get(request_id)
        if job is None or job.user_id != user_id:
            raise TrimRequestNotFound
        if job.status is not TrimStatus.FAILED:
            raise RequestNotFailed(
                f"Only a failed request can be restarted; this one is {job.status.value}"
            )
        attempt = job.attempt + 1
        restarted = await self._trims.transition(
            request_id,
            attempt=job.attempt,
            from_status=(TrimStatus.FAILED,),
            to_status=TrimStatus.SCHEDULED,
            changes={"attempt": attempt, "failure_reason": None},
            events=[self._requested(job, attempt, correlation_id)],
            owner=user_id,
        )
        if restarted is None:  # restarted concurrently: it is no longer failed
            raise RequestNotFailed("Only a failed request can be restarted")
        await self._publish(request_id)
        return restarted

    # -- results from the transcoder -------------------------------------------

    async def started(self, event: JobProgressed) -> None:
        await self._trims.transition(
            event.id,
            attempt=event.attempt,
            from_status=(TrimStatus.SCHEDULED,),
            to_status=TrimStatus.PROCESSING,
        )

    async def completed(self, event: TrimCompleted) -> None:
        await self._trims.transition(
            event.request_id,
            attempt=event.attempt,
            from_status=(TrimStatus.SCHEDULED, TrimStatus.PROCESSING),
            to_status=TrimStatus.DONE,
            changes={"clip_key": event.clip_key, "clip_duration_seconds": event.duration_seconds},
        )

    async def failed(self, event: TrimFailed) -> None:
        await self._trims.transition(
            event.request_id,
            attempt=event.attempt,
            from_status=(TrimStatus.SCHEDULED, TrimStatus.PROCESSING),
            to_status=TrimStatus.FAILED,
            changes={"failure_reason": event.failure_reason},
        )

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _requested(job: TrimJob, attempt: int, correlation_id: str | None) -> Envelope:
        return Envelope.wrap(
            TrimRequested(
                request_id=job.request_id,
                video_id=job.video_id,
                user_id=job.user_id,
                source_key=job.source_key,
                start_seconds=job.start_seconds,
                duration_seconds=job.duration_seconds,
                attempt=attempt,
            ),
            correlation_id=correlation_id,
        )

    async def _publish(self, request_id: str) -> None:
        await self._outbox.publish_soon(TrimRepository.document_id(request_id))
