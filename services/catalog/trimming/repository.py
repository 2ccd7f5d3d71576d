"""MongoDB persistence of trimming: one document per uploaded source and its request.

The seed's `videos` (the source and, once cut, its clip) and `requests` are one
to one, so they share a document: `_id` is the request id (`trim_id`), `video_id`
the video id.
State changes are single-document updates guarded by the state they leave and by
the `attempt` they belong to, carrying their events in the outbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.catalog.media_jobs import JobStates, MediaJobRepository
from shared.events import Envelope
from shared.mongo import Document, document_id
from shared.outbox import OUTBOX_FIELD, guarded_transition


class TrimStatus(StrEnum):
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class TrimJob:
    trim_id: str
    video_id: str
    user_id: str
    name: str
    source_key: str
    start_seconds: float
    duration_seconds: float
    status: TrimStatus
    attempt: int
    created_at: datetime
    failure_reason: str | None = None
    failure_code: str | None = None
    clip_key: str | None = None
    clip_duration_seconds: float | None = None
    #: Where the clip's first frame shows in the source, and how it was cut (None for
    #: clips cut before smart cuts).
    clip_actual_start_seconds: float | None = None
    cut_method: str | None = None
    reencode_reason: str | None = None
    #: Source packets of the span left out of the clip because they did not decode.
    dropped_packets: int | None = None
    #: Its job stalled once and was queued again (the next stall fails it).
    stall_requeued: bool = False
    #: Scheduled, but waiting for a slot of its owner's fair share (not sent yet).
    held: bool = False
    #: The request that scheduled it, for the event sent when it leaves the hold.
    correlation_id: str | None = None
    #: The transcoder's latest report while processing: fraction done and seconds to go.
    progress: float | None = None
    eta_seconds: float | None = None

    @property
    def job_id(self) -> str:
        return self.trim_id

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> TrimJob:
        return cls(
            trim_id=str(doc["_id"]),
            video_id=doc["video_id"],
            user_id=doc["user_id"],
            name=doc["name"],
            source_key=doc["source_key"],
            start_seconds=doc["start_seconds"],
            duration_seconds=doc["duration_seconds"],
            status=TrimStatus(doc["status"]),
            attempt=doc["attempt"],
            created_at=doc["created_at"],
            failure_reason=doc.get("failure_reason"),
            failure_code=doc.get("failure_code"),
            clip_key=doc.get("clip_key"),
            clip_duration_seconds=doc.get("clip_duration_seconds"),
            clip_actual_start_seconds=doc.get("clip_actual_start_seconds"),
            cut_method=doc.get("cut_method"),
            reencode_reason=doc.get("reencode_reason"),
            dropped_packets=doc.get("dropped_packets"),
            progress=doc.get("progress"),
            eta_seconds=doc.get("eta_seconds"),
            stall_requeued=doc.get("stall_requeued", False),
            held=doc.get("held", False),
            correlation_id=doc.get("correlation_id"),
        )


class TrimRepository(MediaJobRepository[TrimJob]):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        # A request's job waits in `scheduled`, runs in `processing`; oldest first.
        states = JobStates(TrimStatus.SCHEDULED.value, TrimStatus.PROCESSING.value)
        super().__init__(db["trims"], states, "created_at")

    def document_id(self, job_id: str) -> ObjectId | None:
        return document_id(job_id)

    def from_document(self, document: Mapping[str, Any]) -> TrimJob:
        return TrimJob.from_document(document)

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("user_id", ASCENDING), ("created_at", DESCENDING)])
        await self.collection.create_index(
            [("user_id", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)]
        )
        # fair share: an owner's held requests, oldest first
        await self.collection.create_index(
            [("user_id", ASCENDING), ("status", ASCENDING), ("held", ASCENDING)]
        )
        # the stall sweeper: processing requests by their last report
        await self.collection.create_index([("status", ASCENDING), ("progress_at", ASCENDING)])

    async def insert(self, job: TrimJob) -> None:
        """Insert a request held for its owner's fair share (`send` lets it go)."""
        await self.collection.insert_one(
            {
                "_id": ObjectId(job.trim_id),
                "video_id": job.video_id,
                "user_id": job.user_id,
                "name": job.name,
                "source_key": job.source_key,
                "start_seconds": job.start_seconds,
                "duration_seconds": job.duration_seconds,
                "status": job.status.value,
                "attempt": job.attempt,
                "created_at": job.created_at,
                "held": True,
                "correlation_id": job.correlation_id,
                OUTBOX_FIELD: [],
            }
        )

    async def get(self, trim_id: str) -> TrimJob | None:
        doc_id = document_id(trim_id)
        if doc_id is None:
            return None
        doc = await self.collection.find_one({"_id": doc_id})
        return TrimJob.from_document(doc) if doc else None

    async def of_user(self, user_id: str, status: TrimStatus | None = None) -> list[TrimJob]:
        query: dict[str, Any] = {"user_id": user_id}
        if status is not None:
            query["status"] = status.value
        cursor = self.collection.find(query).sort("created_at", DESCENDING)
        return [TrimJob.from_document(doc) async for doc in cursor]

    async def transition(
        self,
        trim_id: str,
        *,
        attempt: int,
        from_status: tuple[TrimStatus, ...],
        to_status: TrimStatus,
        changes: Mapping[str, Any] | None = None,
        events: list[Envelope] | None = None,
        owner: str | None = None,
    ) -> TrimJob | None:
        """Move a request of `attempt` between states; None when it was not in
        `from_status` at that attempt (a duplicate or stale event: no-op)."""
        doc_id = document_id(trim_id)
        if doc_id is None:
            return None
        query: dict[str, Any] = {"_id": doc_id, "attempt": attempt}
        if owner is not None:
            query["user_id"] = owner
        doc = await guarded_transition(
            self.collection,
            query,
            from_status=[s.value for s in from_status],
            to_status=to_status.value,
            changes={"updated_at": datetime.now(UTC), **(changes or {})},
            events=events or (),
        )
        return TrimJob.from_document(doc) if doc else None
