"""Cleaning up after a test's own stack: its bucket, and its queues and exchanges on
the shared broker (the machine's RabbitMQ outlives every test session)."""

from __future__ import annotations

import contextlib

import aio_pika
from minio import Minio

#: The subscriptions a stack's services declare queues for (catalog's and the
#: transcoder's), each a main queue with its retry queue and DLQ.
STACK_SUBSCRIPTIONS = (
    ("catalog", "users"),
    ("catalog", "video-results"),
    ("catalog", "storage-events"),
    ("catalog", "trim-results"),
    ("catalog", "webhook-events"),
    ("catalog", "event-log"),
    ("transcoder", "jobs"),
)


def declared_queues(prefix: str) -> list[str]:
    """Every queue a stack with this queue prefix declares: main, retry and DLQ of each."""
    names = []
    for service, subscription in STACK_SUBSCRIPTIONS:
        main = f"{prefix}.{service}.{subscription}"
        names += [main, f"{main}.retry", f"{main}.dlq"]
    return names


def declared_exchanges(prefix: str) -> list[str]:
    """The exchanges a stack with this prefix declares (`KINO_AMQP_EXCHANGE`,
    `KINO_STORAGE_EVENTS_EXCHANGE`)."""
    return [f"kino.{prefix}", f"kino.storage.{prefix}"]


def remove_bucket(s3: Minio, bucket: str) -> None:
    """Remove a bucket and everything in it; nothing happens if it is not there."""
    if not s3.bucket_exists(bucket):
        return
    for stored in s3.list_objects(bucket, recursive=True):
        s3.remove_object(bucket, str(stored.object_name))
    s3.remove_bucket(bucket)


async def delete_exchanges(amqp_url: str, *names: str) -> None:
    """Delete exchanges; one that is already gone is no error."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in names:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.exchange_delete(name)
