"""MinIO bucket notifications (S3 event format, published by MinIO's AMQP target)
translated into Kino's `StorageObjectCreated`.

MinIO sends one JSON message per event with a single record; object keys in
records are URL-encoded. Anything else is refused (→ dead-letter queue).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import aio_pika
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.events import Envelope, StorageObjectCreated
from shared.messaging import ForeignSource


class _S3Object(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    size: int = 0


class _S3Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str


class _S3Entity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucket: _S3Bucket
    object: _S3Object


class _S3Record(BaseModel):
    model_config = ConfigDict(extra="ignore")
    eventName: str
    eventTime: datetime | None = None
    s3: _S3Entity


class _S3Notification(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Records: list[_S3Record]


def translate_notification(body: bytes, bucket: str) -> Envelope:
    try:
        notification = _S3Notification.model_validate(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
        raise ValueError(f"not an S3 event notification: {exc}") from exc
    if len(notification.Records) != 1:
        raise ValueError("expected exactly one record per notification")
    record = notification.Records[0]
    if not record.eventName.startswith("s3:ObjectCreated:"):
        raise ValueError(f"not an object-created event: {record.eventName}")
    if record.s3.bucket.name != bucket:
        raise ValueError(f"notification for another bucket: {record.s3.bucket.name}")
    event = StorageObjectCreated(key=unquote_plus(record.s3.object.key), size=record.s3.object.size)
    data: dict[str, Any] = event.model_dump(mode="json")
    return Envelope(
        type=event.event_type,
        version=event.event_version,
        occurred_at=record.eventTime or datetime.now(UTC),
        data=data,
    )


def storage_events_source(exchange: str, bucket: str) -> ForeignSource:
    """MinIO publishes to a fanout exchange (its AMQP target); we bind one queue to it."""
    return ForeignSource(
        exchange=exchange,
        exchange_type=aio_pika.ExchangeType.FANOUT,
        routing_key="",
        translate=lambda body: translate_notification(body, bucket),
    )
