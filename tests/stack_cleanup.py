"""Cleaning up after a test's own stack: its bucket and its exchanges on the shared
broker (the machine's RabbitMQ outlives every test session)."""

from __future__ import annotations

import contextlib

import aio_pika
from minio import Minio


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
