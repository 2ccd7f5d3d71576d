"""The trimming domain: accept a source and its cut, follow the request's status,
restart failed requests, list finished clips. Knows nothing of HTTP or AMQP.

Statuses: scheduled → processing → done | failed; a failed request can go back to
scheduled (restart), which starts a new attempt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from services.catalog.errors import RequestNotFailed, TrimRequestNotFound, UploadTooLarge
from services.catalog.job_slots import JobSlots, trim_job
from services.catalog.media_jobs import STALLED_REASON, MediaJobLifecycle
from services.catalog.trimming.repository import TrimJob, TrimRepository, TrimStatus
from shared.events import (
    Envelope,
    FailureCode,
    JobProgressed,
    TrimCompleted,
    TrimFailed,
    TrimRequested,
)
from shared.mongo import new_id
from shared.object_keys import source_key
from shared.outbox import OutboxRelay
from shared.storage import Storage

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Clip:
    """A finished cut, ready to fetch."""

    video_id: str
    duration_seconds: float
    url: str
    #: The span asked for, and where the first frame really shows (None for clips cut
    #: before smart cuts), in seconds.
    requested_start: float
    requested_duration: float
    actual_start: float | None
    cut_method: str | None
    reencode_reason: str | None


@dataclass(frozen=True)
class TrimOrder:
    """A validated trimming request (the HTTP edge has parsed the form)."""

    name: str
    start_seconds: float
    duration_seconds: float


@dataclass(frozen=True)
class ReceivedUpload:
    """What reading an upload gave: its text fields, and the bytes stored from its file
    (None when it had no file)."""

    fields: dict[str, str]
    file_size: int | None


#: Stores a file's byte stream with its content type; returns the bytes stored.
StoreFile = Callable[[AsyncIterator[bytes], str], Awaitable[int]]
#: Reads an upload, streaming its file through the `StoreFile` it is given.
ReceiveUpload = Callable[[StoreFile], Awaitable[ReceivedUpload]]
#: Turns an upload's fields into an order; raises to refuse them.
ReadOrder = Callable[[ReceivedUpload], TrimOrder]


class TrimmingService(MediaJobLifecycle[TrimJob]):
    def __init__(
        self,
        trims: TrimRepository,
        storage: Storage,
        outbox: OutboxRelay,
        *,
        url_ttl: timedelta,
        part_size: int,
        max_upload_bytes: int,
        slots: JobSlots,
    ) -> None:
        super().__init__(trims, slots, outbox)
        self._trims = trims
        self._storage = storage
        self._url_ttl = url_ttl
        self._part_size = part_size
        self._max_upload_bytes = max_upload_bytes

    # -- requests --------------------------------------------------------------

    async def accept_upload(
        self,
        user_id: str,
        receive: ReceiveUpload,
        read_order: ReadOrder,
        *,
        correlation_id: str | None,
    ) -> TrimJob:
        """Store the uploaded source as it arrives, read the order, schedule the cut.

        The form's parts may come in any order and the file is never held whole, so
        the source is stored before the order is read; a form or order refused
        discards it, and a stream cut short or over the limit stores nothing.
        """
        video_id = new_id()
        key = source_key(video_id)
        stored = False

        async def store(chunks: AsyncIterator[bytes], content_type: str) -> int:
            nonlocal stored
            stored = True
            return await self._store_source(key, chunks, content_type)

        try:
            order = read_order(await receive(store))
        except BaseException:
            # A form refused after its file part arrived (a later part malformed, a
            # second file, bad fields) must not leave the file behind.
            if stored:
                await self._storage.remove([key])
            raise
        job = TrimJob(
            trim_id=new_id(),
            video_id=video_id,
            user_id=user_id,
            name=order.name,
            source_key=key,
            start_seconds=order.start_seconds,
            duration_seconds=order.duration_seconds,
            status=TrimStatus.SCHEDULED,
            attempt=1,
            created_at=datetime.now(UTC),
            held=True,
            correlation_id=correlation_id,
        )
        await self._trims.insert(job)
        await self.dispatch(user_id)
        return job

    async def requests(self, user_id: str) -> list[TrimJob]:
        return await self._trims.of_user(user_id)

    async def clips(self, user_id: str) -> list[Clip]:
        return [
            Clip(
                video_id=job.video_id,
                duration_seconds=job.clip_duration_seconds,
                url=self._storage.download_url(job.clip_key, self._url_ttl),
                requested_start=job.start_seconds,
                requested_duration=job.duration_seconds,
                actual_start=job.clip_actual_start_seconds,
                cut_method=job.cut_method,
                reencode_reason=job.reencode_reason,
            )
            for job in await self._trims.of_user(user_id, TrimStatus.DONE)
            if job.clip_key is not None and job.clip_duration_seconds is not None
        ]

    async def restart(self, user_id: str, trim_id: str, *, correlation_id: str | None) -> TrimJob:
        job = await self._trims.get(trim_id)
        if job is None or job.user_id != user_id:
            raise TrimRequestNotFound
        if job.status is not TrimStatus.FAILED:
            raise RequestNotFailed(
                f"Only a failed request can be restarted; this one is {job.status.value}"
            )
        attempt = job.attempt + 1
        restarted = await self._trims.transition(
            trim_id,
            attempt=job.attempt,
            from_status=(TrimStatus.FAILED,),
            to_status=TrimStatus.SCHEDULED,
            changes={
                "attempt": attempt,
                "failure_reason": None,
                "failure_code": None,
                "progress": None,
                "eta_seconds": None,
                "progress_at": None,
                "stall_requeued": False,
                "held": True,
                "correlation_id": correlation_id,
            },
            owner=user_id,
        )
        if restarted is None:  # restarted concurrently: it is no longer failed
            raise RequestNotFailed("Only a failed request can be restarted")
        await self.dispatch(user_id)
        return restarted

    # -- results from the transcoder -------------------------------------------

    async def started(self, event: JobProgressed) -> None:
        await self._trims.transition(
            event.id,
            attempt=event.attempt,
            from_status=(TrimStatus.SCHEDULED,),
            to_status=TrimStatus.PROCESSING,
            changes={"progress": 0.0, "progress_at": datetime.now(UTC)},
        )

    async def completed(self, event: TrimCompleted) -> None:
        done = await self._trims.transition(
            event.trim_id,
            attempt=event.attempt,
            from_status=(TrimStatus.SCHEDULED, TrimStatus.PROCESSING),
            to_status=TrimStatus.DONE,
            changes={
                "clip_key": event.clip_key,
                "clip_duration_seconds": event.duration_seconds,
                "clip_actual_start_seconds": event.actual_start_seconds,
                "cut_method": event.cut_method,
                "reencode_reason": event.reencode_reason,
                "dropped_packets": event.dropped_packets,
                "progress": 1.0,
                "eta_seconds": 0.0,
            },
        )
        await self._job_ended(done)

    async def failed(self, event: TrimFailed) -> None:
        failed = await self._trims.transition(
            event.trim_id,
            attempt=event.attempt,
            from_status=(TrimStatus.SCHEDULED, TrimStatus.PROCESSING),
            to_status=TrimStatus.FAILED,
            changes={
                "failure_reason": event.failure_reason,
                "failure_code": event.failure_code,
                "progress": None,
                "eta_seconds": None,
            },
        )
        await self._job_ended(failed)

    # -- helpers ---------------------------------------------------------------

    def _slot(self, job: TrimJob) -> str:
        return trim_job(job.trim_id)

    def _job_event(self, job: TrimJob, correlation_id: str | None) -> Envelope:
        return Envelope.wrap(
            TrimRequested(
                trim_id=job.trim_id,
                video_id=job.video_id,
                user_id=job.user_id,
                source_key=job.source_key,
                start_seconds=job.start_seconds,
                duration_seconds=job.duration_seconds,
                attempt=job.attempt,
            ),
            correlation_id=correlation_id,
        )

    async def _fail_stalled(self, job: TrimJob, now: datetime) -> TrimJob | None:
        return await self._trims.transition(
            job.trim_id,
            attempt=job.attempt,
            from_status=(TrimStatus.PROCESSING,),
            to_status=TrimStatus.FAILED,
            changes={
                "failure_reason": STALLED_REASON,
                "failure_code": FailureCode.STALLED,
                "progress": None,
                "eta_seconds": None,
            },
        )

    async def _store_source(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        return await self._storage.put_stream(
            key,
            _at_most(self._max_upload_bytes, chunks),
            content_type=content_type,
            part_size=self._part_size,
        )


async def _at_most(max_bytes: int, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks, refused with `UploadTooLarge` once they pass `max_bytes`."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise UploadTooLarge(max_bytes)
        yield chunk
