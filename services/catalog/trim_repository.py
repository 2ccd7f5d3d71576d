"""MongoDB persistence of trimming: one document per uploaded source and its request.

The seed's `videos` (the source and, once cut, its clip) and `requests` are one
to one, so they share a document: `_id` is the request id, `video_id` the video id.
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
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared.events import Envelope
from shared.mongo import Document
from shared.outbox import OUTBOX_FIELD, outbox_entry


class TrimStatus(StrEnum):
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class TrimJob:
    request_id: str
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
    clip_key: str | None = None
    clip_duration_seconds: float | None = None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> TrimJob:
        return cls(
            request_id=str(doc["_id"]),
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
            clip_key=doc.get("clip_key"),
            clip_duration_seconds=doc.get("clip_duration_seconds"),
        )


def request_object_id(request_id: str) -> ObjectId | None:
    """The document id of a request id, or None for an id that cannot exist."""
    try:
        return ObjectId(request_id)
    except (InvalidId, TypeError):
        return None


class TrimRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["trims"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("user_id", ASCENDING), ("created_at", DESCENDING)])
        await self.collection.create_index(
            [("user_id", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)]
        )

    @staticmethod
    def new_id() -> str:
        return str(ObjectId())

    @staticmethod
    def document_id(request_id: str) -> ObjectId:
        return ObjectId(request_id)

    async def insert(self, job: TrimJob, events: list[Envelope]) -> None:
        await self.collection.insert_one(
            {
                "_id": ObjectId(job.request_id),
                "video_id": job.video_id,
                "user_id": job.user_id,
                "name": job.name,
                "source_key": job.source_key,
                "start_seconds": job.start_seconds,
                "duration_seconds": job.duration_seconds,
                "status": job.status.value,
                "attempt": job.attempt,
                "created_at": job.created_at,
                OUTBOX_FIELD: [outbox_entry(e) for e in events],
            }
        )

    async def get(self, request_id: str) -> TrimJob | None:
        document_id = request_object_id(request_id)
        if document_id is None:
            return None
        doc = await self.collection.find_one({"_id": document_id})
        return TrimJob.from_document(doc) if doc else None

    async def of_user(self, user_id: str, status: TrimStatus | None = None) -> list[TrimJob]:
        query: dict[str, Any] = {"user_id": user_id}
        if status is not None:
            query["status"] = status.value
        cursor = self.collection.find(query).sort("created_at", DESCENDING)
        return [TrimJob.from_document(doc) async for doc in cursor]

    async def transition(
        self,
        request_id: str,
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
        document_id = request_object_id(request_id)
        if document_id is None:
            return None
        query: dict[str, Any] = {
            "_id": document_id,
            "attempt": attempt,
            "status": {"$in": [s.value for s in from_status]},
        }
        if owner is not None:
            query["user_id"] = owner
        update: dict[str, Any] = {
            "$set": {"status": to_status.value, "updated_at": datetime.now(UTC), **(changes or {})}
        }
        if events:
            update["$push"] = {OUTBOX_FIELD: {"$each": [outbox_entry(e) for e in events]}}
        doc = await self.collection.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )
        return TrimJob.from_document(doc) if doc else None
