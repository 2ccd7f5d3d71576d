"""MongoDB of live events: the log (`event_log`) and each owner's sequence
(`event_log_sequences`).

An entry's `seq` is taken from its owner's counter document with one
`find_one_and_update($inc)`, so it rises across every catalog replica; `(owner, seq)`
is unique. `source` names the event that caused the entry and is unique too, so a
redelivered message logs nothing twice. A number can be taken and never stored (two
replicas racing on the same source, a crash between the two writes): readers treat
such a gap as filled once it has stayed open for a moment (`service.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import Document


@dataclass(frozen=True)
class NewEntry:
    owner: str
    event_type: str
    #: The causing event (`video.ready:<hash_id>:<attempt>`, `job.progress:<envelope id>`).
    source: str
    #: The message's `data`: one line of JSON.
    body: str
    created_at: datetime


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    event_type: str
    body: str
    created_at: datetime

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> LoggedEvent:
        return cls(
            seq=doc["seq"],
            event_type=doc["event_type"],
            body=doc["body"],
            created_at=doc["created_at"].replace(tzinfo=UTC),
        )


class EventLogRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.entries = db["event_log"]
        self.sequences = db["event_log_sequences"]

    async def ensure_indexes(self) -> None:
        await self.entries.create_index([("owner", ASCENDING), ("seq", ASCENDING)], unique=True)
        await self.entries.create_index([("source", ASCENDING)], unique=True)
        # the retention sweep
        await self.entries.create_index([("created_at", ASCENDING)])

    async def append(self, entry: NewEntry) -> int | None:
        """Log the entry once; its `seq`, or None when its source is logged already."""
        if await self.entries.find_one({"source": entry.source}, {"_id": 1}):
            return None
        counter = await self.sequences.find_one_and_update(
            {"_id": entry.owner},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert counter is not None  # upserted
        seq = int(counter["seq"])
        try:
            await self.entries.insert_one(
                {
                    "owner": entry.owner,
                    "seq": seq,
                    "event_type": entry.event_type,
                    "source": entry.source,
                    "body": entry.body,
                    "created_at": entry.created_at,
                }
            )
        except DuplicateKeyError:
            return None  # another replica logged the same source meanwhile: a gap
        return seq

    async def last_seq(self, owner: str) -> int:
        """The owner's latest number taken (0: none yet)."""
        counter = await self.sequences.find_one({"_id": owner})
        return int(counter["seq"]) if counter else 0

    async def after(self, owner: str, seq: int, limit: int) -> list[LoggedEvent]:
        cursor = (
            self.entries.find({"owner": owner, "seq": {"$gt": seq}})
            .sort("seq", ASCENDING)
            .limit(limit)
        )
        return [LoggedEvent.from_document(doc) async for doc in cursor]

    async def expire(self, before: datetime) -> int:
        """Remove entries logged before `before` (the counters stay: ids never reset)."""
        deleted = await self.entries.delete_many({"created_at": {"$lt": before}})
        return deleted.deleted_count
