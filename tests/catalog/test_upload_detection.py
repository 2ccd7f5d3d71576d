"""How catalog learns that an upload finished: the reconciler's listing and the
store's notifications converge on one `video.uploaded` per upload.

The catalog here runs in this process on its own exchange and queues, with no
transcoder behind it, so its uploads stay `processing` and every `video.uploaded`
it publishes lands in a queue the test reads.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiohttp
import pytest
from aiohttp import web
from pymongo import AsyncMongoClient

from devstack.stores import StoreEndpoints
from services.catalog.app import create_app
from services.catalog.keys import RECONCILER
from services.catalog.settings import CatalogSettings
from shared.identity import IDENTITY_HEADER, Identity, IdentitySigner
from tests.conftest import events_handled, serve, upload_to_storage
from tests.polling import eventually


@dataclass
class LoneCatalog:
    url: str
    app: web.Application
    settings: CatalogSettings
    uploaded: aio_pika.abc.AbstractQueue
    channel: aio_pika.abc.AbstractChannel
    user_id: str

    def headers(self) -> dict[str, str]:
        signer = IdentitySigner(self.settings.internal_secret.get_secret_value())
        return {IDENTITY_HEADER: signer.sign(Identity(self.user_id))}

    async def uploaded_events(self) -> list[dict[str, Any]]:
        """Drain the `video.uploaded` messages published so far."""
        events = []
        while (message := await self.uploaded.get(fail=False, no_ack=True)) is not None:
            events.append(json.loads(message.body))
        return events


@pytest.fixture
async def catalog(
    make_settings: Callable[..., Any],
    namespace: str,
    amqp_cleanup: list[str],
    stores: StoreEndpoints,
) -> AsyncIterator[LoneCatalog]:
    prefix = f"{namespace}-lone-{uuid.uuid4().hex[:6]}"
    exchange, storage_exchange = f"kino.{prefix}", f"kino.storage.{prefix}"
    settings = make_settings(
        CatalogSettings,
        amqp_exchange=exchange,
        amqp_queue_prefix=prefix,
        storage_events_exchange=storage_exchange,
        upload_reconcile_interval_seconds=3600,  # the test runs the reconciler itself
        mongo_db=f"kino_catalog_{prefix}".replace("-", "_"),
    )
    for name in ("users", "video-results", "storage-events"):
        amqp_cleanup.extend(f"{prefix}.catalog.{name}{s}" for s in ("", ".retry", ".dlq"))
    app = create_app(settings)
    connection = await aio_pika.connect(stores.amqp_url)
    async with connection, serve(app) as url:
        channel = await connection.channel()
        uploaded = await channel.declare_queue(exclusive=True)
        await uploaded.bind(exchange, routing_key="video.uploaded")
        yield LoneCatalog(url, app, settings, uploaded, channel, user_id=uuid.uuid4().hex[:24])
        for name in (exchange, storage_exchange):
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.exchange_delete(name)


async def _request_upload(http: aiohttp.ClientSession, catalog: LoneCatalog) -> dict[str, Any]:
    async with http.get(
        f"{catalog.url}/video/upload/",
        params={"file_content_type": "video/mp4", "file_name": "a.mp4"},
        headers=catalog.headers(),
    ) as response:
        assert response.status == 200
        return dict(await response.json())


async def _upload(http: aiohttp.ClientSession, catalog: LoneCatalog) -> str:
    instructions = await _request_upload(http, catalog)
    stored = await upload_to_storage(http, instructions, b"not really a video")
    assert stored.status in {200, 201, 204}
    return str(instructions["signatures"]["key"])


async def _unprocessed(http: aiohttp.ClientSession, catalog: LoneCatalog) -> list[dict[str, Any]]:
    async with http.get(f"{catalog.url}/video/my/", headers=catalog.headers()) as response:
        assert response.status == 200
        return list((await response.json())["unprocessed_videos"])


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
    key = await _upload(http, catalog)
    [pending] = await _unprocessed(http, catalog)
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
    assert len(await _unprocessed(http, catalog)) == 1


async def test_notification_and_reconciler_converge_on_one_event(
    http: aiohttp.ClientSession, catalog: LoneCatalog, stores: StoreEndpoints
) -> None:
    key = await _upload(http, catalog)
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
    key = await _upload(http, catalog)
    await catalog.app[RECONCILER].run_once()
    hash_id = key.removeprefix("incoming/")
    async with http.delete(f"{catalog.url}/video/my/{hash_id}", headers=catalog.headers()) as r:
        assert r.status == 425
        assert "still being processed" in (await r.json())["detail"]
    assert len(await _unprocessed(http, catalog)) == 1


async def test_expired_pending_uploads_are_dropped(
    http: aiohttp.ClientSession, catalog: LoneCatalog, stores: StoreEndpoints
) -> None:
    instructions = await _request_upload(http, catalog)  # never uploaded
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
    assert await _unprocessed(http, catalog) == []
    assert await catalog.uploaded_events() == []
