"""MongoDB persistence of the hosted videos.

Every state change of a video is one single-document update guarded by the state
it leaves (`{"status": "processing"}` in the filter), so a duplicated or
redelivered event changes nothing twice; the events a change causes ride in the
same update (`shared.outbox.guarded_transition`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.catalog.hosting.cursor import PagePosition
from services.catalog.media_jobs import JobStates, MediaJobRepository, at_attempt
from shared.events import Envelope, Rendition
from shared.mongo import Document
from shared.object_keys import hosted_video_keys, renditions_prefix
from shared.outbox import OUTBOX_FIELD, guarded_transition


class VideoStatus(StrEnum):
    PENDING = "pending"  # upload instructions issued, file not seen yet
    PROCESSING = "processing"  # file arrived, the transcoder is on it
    PROCESSED = "processed"  # listed
    FAILED = "failed"
    DELETED = "deleted"  # tombstone until its `video.deleted` event is out


@dataclass(frozen=True)
class MultipartUpload:
    """A resumable upload: the S3 multipart upload the client sends the file's parts
    to, each `part_size` bytes but the last."""

    upload_id: str
    size: int
    part_size: int

    @property
    def parts(self) -> int:
        return math.ceil(self.size / self.part_size)

    def part_bytes(self, number: int) -> int:
        """The size part `number` (from 1) must have."""
        return min(self.part_size, self.size - (number - 1) * self.part_size)


@dataclass(frozen=True)
class Video:
    hash_id: str
    user_id: str
    file_name: str
    content_type: str
    status: VideoStatus
    upload_key: str
    upload_time: datetime
    upload_expires_at: datetime
    title: str
    description: str = ""
    is_private: bool = False
    size_in_bytes: int | None = None
    duration_seconds: float | None = None
    video_type: str | None = None
    playback_key: str | None = None
    thumbnail_key: str | None = None
    listing_time: datetime | None = None
    failure_reason: str | None = None
    failure_code: str | None = None
    #: Source packets left out of the playback file because they did not decode.
    dropped_packets: int | None = None
    #: The transcoder's latest report while processing: fraction done and seconds to go.
    progress: float | None = None
    eta_seconds: float | None = None
    #: 1, then one more with each retry.
    attempt: int = 1
    failed_at: datetime | None = None
    #: Its job stalled once and was queued again (the next stall fails it).
    stall_requeued: bool = False
    #: Processing, but waiting for a slot of its owner's fair share (not sent yet).
    held: bool = False
    #: The request that made it processing, for the event sent when it leaves the hold.
    correlation_id: str | None = None
    #: The rungs of its ladder stored so far, highest first (none for a video hosted
    #: before ladders: it has its one playback file).
    renditions: tuple[Rendition, ...] = ()
    #: Heights of the rungs still being made after it was listed, and how far they got.
    ladder_pending: tuple[int, ...] = ()
    ladder_progress: float | None = None
    ladder_eta_seconds: float | None = None
    #: Why the rest of the ladder was not made (the video stays playable).
    ladder_failure_reason: str | None = None
    #: Counts the ladder's changes: a change is made to the version it was read at.
    ladder_version: int = 0
    #: Uploaded in parts (resumable), not with the POST policy.
    multipart: MultipartUpload | None = None

    @property
    def job_id(self) -> str:
        return self.hash_id

    @property
    def object_keys(self) -> list[str]:
        """Every object the video may have in storage (what deleting it removes), with
        everything under `object_prefixes`."""
        return hosted_video_keys(self.hash_id)

    @property
    def object_prefixes(self) -> list[str]:
        return [renditions_prefix(self.hash_id)]

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Video:
        return cls(
            hash_id=doc["_id"],
            user_id=doc["user_id"],
            file_name=doc["file_name"],
            content_type=doc["content_type"],
            status=VideoStatus(doc["status"]),
            upload_key=doc["upload_key"],
            upload_time=doc["upload_time"],
            upload_expires_at=doc["upload_expires_at"],
            title=doc.get("title", ""),
            description=doc.get("description", ""),
            is_private=doc.get("is_private", False),
            size_in_bytes=doc.get("size_in_bytes"),
            duration_seconds=doc.get("duration_seconds"),
            video_type=doc.get("video_type"),
            playback_key=doc.get("playback_key"),
            thumbnail_key=doc.get("thumbnail_key"),
            listing_time=doc.get("listing_time"),
            failure_reason=doc.get("failure_reason"),
            failure_code=doc.get("failure_code"),
            dropped_packets=doc.get("dropped_packets"),
            progress=doc.get("progress"),
            eta_seconds=doc.get("eta_seconds"),
            attempt=doc.get("attempt", 1),
            failed_at=doc.get("failed_at"),
            stall_requeued=doc.get("stall_requeued", False),
            held=doc.get("held", False),
            correlation_id=doc.get("correlation_id"),
            renditions=tuple(Rendition.model_validate(r) for r in doc.get("renditions") or ()),
            ladder_pending=tuple(doc.get("ladder_pending") or ()),
            ladder_progress=doc.get("ladder_progress"),
            ladder_eta_seconds=doc.get("ladder_eta_seconds"),
            ladder_failure_reason=doc.get("ladder_failure_reason"),
            ladder_version=doc.get("ladder_version", 0),
            multipart=MultipartUpload(**doc["multipart"]) if doc.get("multipart") else None,
        )


class HashIdTaken(Exception):
    pass


_LISTED = {"status": VideoStatus.PROCESSED.value, "is_private": False}
_NEWEST_FIRST = [("listing_time", DESCENDING), ("_id", DESCENDING)]


class VideoRepository(MediaJobRepository[Video]):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        # A video's job waits and runs in `processing`; held ones oldest upload first.
        processing = VideoStatus.PROCESSING.value
        super().__init__(db["videos"], JobStates(processing, processing), "upload_time")

    def document_id(self, job_id: str) -> str:
        return job_id

    def from_document(self, document: Mapping[str, Any]) -> Video:
        return Video.from_document(document)

    async def ensure_indexes(self) -> None:
        # explore: public processed videos, newest first
        await self.collection.create_index(
            [("status", ASCENDING), ("is_private", ASCENDING), *_NEWEST_FIRST]
        )
        # a user's public videos, and `/video/my/`
        await self.collection.create_index(
            [
                ("user_id", ASCENDING),
                ("status", ASCENDING),
                ("is_private", ASCENDING),
                *_NEWEST_FIRST,
            ]
        )
        await self.collection.create_index([("user_id", ASCENDING), ("upload_time", DESCENDING)])
        # fair share: an owner's held videos, oldest first
        await self.collection.create_index(
            [("user_id", ASCENDING), ("status", ASCENDING), ("held", ASCENDING)]
        )
        # the stall sweeper: processing videos by their last report
        await self.collection.create_index([("status", ASCENDING), ("progress_at", ASCENDING)])
        # the reconciler: pending uploads by expiry, and listed objects by key
        await self.collection.create_index(
            [("status", ASCENDING), ("upload_expires_at", ASCENDING)]
        )
        await self.collection.create_index("upload_key")
        await self.collection.create_index("multipart.upload_id", sparse=True)

    async def insert(self, video: Video) -> None:
        document: Document = {
            "_id": video.hash_id,
            "user_id": video.user_id,
            "file_name": video.file_name,
            "content_type": video.content_type,
            "status": video.status.value,
            "upload_key": video.upload_key,
            "upload_time": video.upload_time,
            "upload_expires_at": video.upload_expires_at,
            "title": video.title,
            "description": video.description,
            "is_private": video.is_private,
            OUTBOX_FIELD: [],
        }
        if video.multipart is not None:
            document["multipart"] = asdict(video.multipart)
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError as exc:
            raise HashIdTaken from exc

    async def get(self, hash_id: str) -> Video | None:
        doc = await self.collection.find_one(
            {"_id": hash_id, "status": {"$ne": VideoStatus.DELETED.value}}
        )
        return Video.from_document(doc) if doc else None

    async def transition(
        self,
        hash_id: str,
        *,
        from_status: VideoStatus | tuple[VideoStatus, ...],
        to_status: VideoStatus,
        changes: Mapping[str, Any] | None = None,
        events: list[Envelope] | None = None,
        owner: str | None = None,
        attempt: int | None = None,
    ) -> Video | None:
        """Move a video between states; `None` if it was not in `from_status` (no-op),
        or, given `attempt`, was at another attempt (a late result of an earlier one)."""
        allowed = from_status if isinstance(from_status, tuple) else (from_status,)
        query: dict[str, Any] = {"_id": hash_id}
        if owner is not None:
            query["user_id"] = owner
        if attempt is not None:
            query |= at_attempt(attempt)
        doc = await guarded_transition(
            self.collection,
            query,
            from_status=[s.value for s in allowed],
            to_status=to_status.value,
            changes=changes,
            events=events or (),
        )
        return Video.from_document(doc) if doc else None

    async def update_ladder(
        self, expected: Video, attempt: int, changes: Mapping[str, Any]
    ) -> bool:
        """Change a listed video's ladder fields, unless it changed since `expected` was
        read (another attempt, deleted, or its ladder moved on): False then."""
        result = await self.collection.update_one(
            {
                "_id": expected.hash_id,
                **at_attempt(attempt),
                "status": VideoStatus.PROCESSED.value,
                "ladder_version": expected.ladder_version,
            },
            {"$set": {**changes, "ladder_version": expected.ladder_version + 1}},
        )
        return result.matched_count == 1

    async def record_ladder_progress(
        self, hash_id: str, attempt: int, fraction: float, eta_seconds: float | None
    ) -> None:
        """Keep the latest report on a listed video's rungs still being made."""
        await self.collection.update_one(
            {
                "_id": hash_id,
                **at_attempt(attempt),
                "status": VideoStatus.PROCESSED.value,
                "ladder_busy": True,
            },
            {"$set": {"ladder_progress": fraction, "ladder_eta_seconds": eta_seconds}},
        )

    async def update_fields(self, hash_id: str, owner: str, changes: Mapping[str, Any]) -> bool:
        result = await self.collection.update_one(
            {"_id": hash_id, "user_id": owner, "status": {"$ne": VideoStatus.DELETED.value}},
            {"$set": dict(changes)},
        )
        return result.matched_count == 1

    async def of_user(self, user_id: str) -> list[Video]:
        cursor = self.collection.find(
            {"user_id": user_id, "status": {"$ne": VideoStatus.DELETED.value}}
        ).sort("upload_time", DESCENDING)
        return [Video.from_document(doc) async for doc in cursor]

    async def listed_page(
        self,
        *,
        limit: int,
        after: PagePosition | None,
        user_id: str | None = None,
        exclude_user: str | None = None,
    ) -> list[Video]:
        """Public processed videos, newest first, after `after` (keyset pagination)."""
        query: dict[str, Any] = dict(_LISTED)
        if user_id is not None:
            query["user_id"] = user_id
        elif exclude_user is not None:
            query["user_id"] = {"$ne": exclude_user}
        if after is not None:
            query["$or"] = [
                {"listing_time": {"$lt": after.listing_time}},
                {"listing_time": after.listing_time, "_id": {"$lt": after.hash_id}},
            ]
        cursor = self.collection.find(query).sort(_NEWEST_FIRST).limit(limit)
        return [Video.from_document(doc) async for doc in cursor]

    async def pending_with_keys(self, keys: list[str]) -> list[Video]:
        cursor = self.collection.find(
            {"status": VideoStatus.PENDING.value, "upload_key": {"$in": keys}}
        )
        return [Video.from_document(doc) async for doc in cursor]

    async def known_upload_keys(self, keys: list[str]) -> set[str]:
        cursor = self.collection.find({"upload_key": {"$in": keys}}, {"upload_key": 1})
        return {doc["upload_key"] async for doc in cursor}

    async def expired_pending(self, now: datetime) -> list[Video]:
        cursor = self.collection.find(
            {"status": VideoStatus.PENDING.value, "upload_expires_at": {"$lt": now}}
        )
        return [Video.from_document(doc) async for doc in cursor]

    async def live_multipart_uploads(self, upload_ids: list[str], now: datetime) -> set[str]:
        """Of these multipart upload ids, those of pending uploads not expired yet."""
        cursor = self.collection.find(
            {
                "status": VideoStatus.PENDING.value,
                "multipart.upload_id": {"$in": upload_ids},
                "upload_expires_at": {"$gte": now},
            },
            {"multipart.upload_id": 1},
        )
        return {doc["multipart"]["upload_id"] async for doc in cursor}

    async def failed_upload_keys(self, keys: list[str], failed_before: datetime) -> list[str]:
        """Of these upload keys, those of videos that failed before `failed_before`."""
        cursor = self.collection.find(
            {
                "upload_key": {"$in": keys},
                "status": VideoStatus.FAILED.value,
                "failed_at": {"$lt": failed_before},
            },
            {"upload_key": 1},
        )
        return [doc["upload_key"] async for doc in cursor]

    async def purge_tombstones(self) -> int:
        """Remove deleted videos whose `video.deleted` event has been published."""
        result = await self.collection.delete_many(
            {"status": VideoStatus.DELETED.value, OUTBOX_FIELD: {"$size": 0}}
        )
        return result.deleted_count
