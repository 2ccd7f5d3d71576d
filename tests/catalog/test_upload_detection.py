"""How catalog learns that an upload finished: the reconciler's listing and the
store's notifications converge on one `video.uploaded` per upload.

The catalog here runs in this process on its own exchange and queues, with no
transcoder behind it, so its uploads stay `processing` and every `video.uploaded`
it publishes lands in a queue the test reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiohttp
from pymongo import AsyncMongoClient

from devstack.stores import StoreEndpoints
from services.catalog.keys import RECONCILER
from tests.catalog.conftest import LoneCatalog, request_upload, unprocessed, upload
from tests.conftest import events_handled
from tests.polling import eventually


def _minio_notification(bucket: str, key: str, size: int) -> bytes:
    """What MinIO's AMQP target publishes for an upload (S3 event format, key URL-encoded)."""
    return json.dumps(
        {
            "EventName": "s3:ObjectCreated:Post",
            "Key": f"{bucket}/{key}",
            "Records": [
                {
                    "eventVersion": "2.0",
                    "eventSource": "minio:s3",
                    "eventTime": datetime.now(UTC).isoformat(),
                    "eventName": "s3:ObjectCreated:Post",
                    "s3": {
                        "bucket": {"name": bucket},
                        "object": {"key": key.replace("/", "%2F"), "size": size},
                    },
                }
            ],
        }
    ).encode()


async def test_reconciler_finds_an_upload_without_notifications(
    http: aiohttp.ClientSession, catalog: LoneCatalog
) -> None:
    key = await upload(http, catalog)
    [pending] = await unprocessed(http, catalog)
    assert "failure_reason" not in pending

    report = await catalog.app[RECONCILER].run_once()
    assert report.arrived == 1
    [event] = await catalog.uploaded_events()
    assert event["type"] == "video.uploaded"
    assert event["data"]["object_key"] == key
    assert event["data"]["user_id"] == catalog.user_id

    again = await catalog.app[RECONCILER].run_once()
    assert again.arrived == 0
    assert await catalog.uploaded_events() == []
    assert len(await unprocessed(http, catalog)) == 1


async def test_notification_and_reconciler_converge_on_one_event(
    http: aiohttp.ClientSession, catalog: LoneCatalog, stores: StoreEndpoints
) -> None:
    key = await upload(http, catalog)
    bucket = catalog.settings.s3_bucket
    queue = f"{catalog.settings.amqp_queue_prefix}.catalog.storage-events"
    exchange = await catalog.channel.get_exchange(catalog.settings.storage_events_exchange)
    # The test plays MinIO's part: SeaweedFS has no bucket notifications.
    for expected in (1, 2):
        await exchange.publish(
            aio_pika.Message(_minio_notification(bucket, key, 18)), routing_key=""
        )

        async def handled(count: int = expected) -> bool:
            return await events_handled(http, catalog.url, queue) >= count

        await eventually(handled)
    assert (await catalog.app[RECONCILER].run_once()).arrived == 0
    [event] = await catalog.uploaded_events()
    assert event["data"]["object_key"] == key


async def test_delete_while_processing_is_425(
    http: aiohttp.ClientSession, catalog: LoneCatalog
) -> None:
    key = await upload(http, catalog)
    await catalog.app[RECONCILER].run_once()
    hash_id = key.removeprefix("incoming/")
    async with http.delete(f"{catalog.url}/video/my/{hash_id}", headers=catalog.headers()) as r:
        assert r.status == 425
        assert "still being processed" in (await r.json())["detail"]
    assert len(await unprocessed(http, catalog)) == 1


async def test_expired_pending_uploads_are_dropped(
    http: aiohttp.ClientSession, catalog: LoneCatalog, stores: StoreEndpoints
) -> None:
    instructions = await request_upload(http, catalog)  # never uploaded
    hash_id = str(instructions["signatures"]["key"]).removeprefix("incoming/")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stores.mongo_url)
    try:
        # Arrange: its upload policy ran out an hour ago.
        await client[catalog.settings.mongo_db]["videos"].update_one(
            {"_id": hash_id},
            {"$set": {"upload_expires_at": datetime.now(UTC) - timedelta(hours=1)}},
        )
    finally:
        await client.close()
    report = await catalog.app[RECONCILER].run_once()
    assert report.expired == 1
    assert await unprocessed(http, catalog) == []
    assert await catalog.uploaded_events() == []
