"""MongoDB of webhooks: the endpoints (`webhooks`) and their deliveries
(`webhook_deliveries`, one document per message and endpoint, its attempts inside).

A delivery's `_id` is `<endpoint id>:<source key>`, so recording the same source event
twice (a redelivered message) stores one delivery. A delivery is sent by whoever holds
its lease: claiming sets `lease_until` and a random `lease_token` in one guarded
update, so two catalog replicas never send the same attempt at once, and a replica
that died mid-attempt leaves a lease that simply expires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document

#: `lease_until` of a delivery nobody holds (a date, so that one range query finds both).
NO_LEASE = datetime(1970, 1, 1, tzinfo=UTC)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Endpoint:
    id: str
    user_id: str
    url: str
    event_types: list[str]
    secret: str
    enabled: bool
    created_at: datetime

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Endpoint:
        return cls(
            id=doc["_id"],
            user_id=doc["user_id"],
            url=doc["url"],
            event_types=list(doc["event_types"]),
            secret=doc["secret"],
            enabled=doc["enabled"],
            created_at=doc["created_at"].replace(tzinfo=UTC),
        )


@dataclass(frozen=True)
class Attempt:
    number: int
    status: DeliveryStatus
    at: datetime
    response_code: int | None = None
    error: str | None = None

    def document(self) -> Document:
        return {
            "number": self.number,
            "status": self.status.value,
            "at": self.at,
            "response_code": self.response_code,
            "error": self.error,
        }


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    event_type: str
    message_id: str
    body: bytes
    status: DeliveryStatus
    next_attempt_at: datetime
    created_at: datetime
    attempts: list[Attempt] = field(default_factory=list)
    lease_token: str | None = None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Delivery:
        return cls(
            id=doc["_id"],
            endpoint_id=doc["endpoint_id"],
            event_type=doc["event_type"],
            message_id=doc["message_id"],
            body=bytes(doc["body"]),
            status=DeliveryStatus(doc["status"]),
            next_attempt_at=doc["next_attempt_at"].replace(tzinfo=UTC),
            created_at=doc["created_at"].replace(tzinfo=UTC),
            attempts=[
                Attempt(
                    number=a["number"],
                    status=DeliveryStatus(a["status"]),
                    at=a["at"].replace(tzinfo=UTC),
                    response_code=a.get("response_code"),
                    error=a.get("error"),
                )
                for a in doc.get("attempts", [])
            ],
            lease_token=doc.get("lease_token"),
        )


@dataclass(frozen=True)
class NewDelivery:
    endpoint_id: str
    source_key: str
    event_type: str
    message_id: str
    body: bytes


class WebhookRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.endpoints = db["webhooks"]
        self.deliveries = db["webhook_deliveries"]

    async def ensure_indexes(self) -> None:
        await self.endpoints.create_index([("user_id", ASCENDING), ("created_at", ASCENDING)])
        # the worker: due, unleased deliveries
        await self.deliveries.create_index(
            [("status", ASCENDING), ("next_attempt_at", ASCENDING), ("lease_until", ASCENDING)]
        )
        # an endpoint's deliveries, newest first
        await self.deliveries.create_index([("endpoint_id", ASCENDING), ("created_at", DESCENDING)])

    # -- endpoints -------------------------------------------------------------

    async def insert_endpoint(self, endpoint: Endpoint) -> None:
        await self.endpoints.insert_one(
            {
                "_id": endpoint.id,
                "user_id": endpoint.user_id,
                "url": endpoint.url,
                "event_types": endpoint.event_types,
                "secret": endpoint.secret,
                "enabled": endpoint.enabled,
                "created_at": endpoint.created_at,
            }
        )

    async def count_of(self, user_id: str) -> int:
        return await self.endpoints.count_documents({"user_id": user_id})

    async def endpoints_of(self, user_id: str) -> list[Endpoint]:
        cursor = self.endpoints.find({"user_id": user_id}).sort("created_at", ASCENDING)
        return [Endpoint.from_document(doc) async for doc in cursor]

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        doc = await self.endpoints.find_one({"_id": endpoint_id})
        return Endpoint.from_document(doc) if doc else None

    async def subscribed(self, user_id: str, event_type: str) -> list[Endpoint]:
        """The user's enabled endpoints that receive `event_type`."""
        found = await self.endpoints_of(user_id)
        return [e for e in found if e.enabled and event_type in e.event_types]

    async def delete_endpoint(self, endpoint_id: str, user_id: str) -> bool:
        """Delete the user's endpoint and its deliveries; False when it is not theirs."""
        deleted = await self.endpoints.delete_one({"_id": endpoint_id, "user_id": user_id})
        if not deleted.deleted_count:
            return False
        await self.deliveries.delete_many({"endpoint_id": endpoint_id})
        return True

    async def disable_endpoint(self, endpoint_id: str) -> None:
        """No more deliveries to the endpoint: it is disabled and what it still had
        pending is failed."""
        await self.endpoints.update_one({"_id": endpoint_id}, {"$set": {"enabled": False}})
        await self.deliveries.update_many(
            {"endpoint_id": endpoint_id, "status": DeliveryStatus.PENDING.value},
            {"$set": {"status": DeliveryStatus.FAILED.value}},
        )

    # -- deliveries ------------------------------------------------------------

    async def record(self, deliveries: Sequence[NewDelivery], now: datetime) -> None:
        """Store each delivery once: a delivery already recorded stays as it is."""
        for new in deliveries:
            await self.deliveries.update_one(
                {"_id": f"{new.endpoint_id}:{new.source_key}"},
                {
                    "$setOnInsert": {
                        "endpoint_id": new.endpoint_id,
                        "event_type": new.event_type,
                        "message_id": new.message_id,
                        "body": new.body,
                        "status": DeliveryStatus.PENDING.value,
                        "next_attempt_at": now,
                        "lease_until": NO_LEASE,
                        "created_at": now,
                        "attempts": [],
                    }
                },
                upsert=True,
            )

    async def claim(self, now: datetime, lease_until: datetime, token: str) -> Delivery | None:
        """Lease the most overdue pending delivery nobody holds."""
        doc = await self.deliveries.find_one_and_update(
            {
                "status": DeliveryStatus.PENDING.value,
                "next_attempt_at": {"$lte": now},
                "lease_until": {"$lte": now},
            },
            {"$set": {"lease_until": lease_until, "lease_token": token}},
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return Delivery.from_document(doc) if doc else None

    async def finish_attempt(
        self,
        delivery: Delivery,
        attempt: Attempt,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> bool:
        """Record an attempt and the delivery's new state, only while still holding the
        lease (False: it expired and another replica may have taken the delivery)."""
        changes: Document = {"status": status.value, "lease_until": NO_LEASE, "lease_token": None}
        if next_attempt_at is not None:
            changes["next_attempt_at"] = next_attempt_at
        updated = await self.deliveries.update_one(
            {"_id": delivery.id, "lease_token": delivery.lease_token},
            {"$set": changes, "$push": {"attempts": attempt.document()}},
        )
        return updated.modified_count == 1

    async def drop(self, delivery_id: str) -> None:
        await self.deliveries.delete_one({"_id": delivery_id})

    async def deliveries_of(self, endpoint_id: str, limit: int) -> list[Delivery]:
        cursor = (
            self.deliveries.find({"endpoint_id": endpoint_id})
            .sort("created_at", DESCENDING)
            .limit(limit)
        )
        return [Delivery.from_document(doc) async for doc in cursor]
