"""A catalog running in the test's process on its own exchange, queues and database,
with no transcoder behind it: its uploads stay `processing` until the test publishes
the transcoder's results, and every `video.uploaded` it publishes lands in a queue the
test reads."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiohttp
import pytest
from aiohttp import web

from devstack.stores import StoreEndpoints
from services.catalog.app import create_app
from services.catalog.settings import CatalogSettings
from shared.events import Envelope, Event
from shared.identity import IDENTITY_HEADER, Identity, IdentitySigner
from tests.conftest import serve, upload_to_storage


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

    async def publish(self, event: Event) -> None:
        """Publish an event on the catalog's exchange (the test plays the transcoder)."""
        exchange = await self.channel.get_exchange(self.settings.amqp_exchange)
        body = Envelope.wrap(event, correlation_id=None).model_dump_json().encode()
        await exchange.publish(aio_pika.Message(body), routing_key=event.event_type)

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
        job_stall_seconds=1,  # jobs a test starts and leaves silent stall at once
        mongo_db=f"kino_catalog_{prefix}".replace("-", "_"),
    )
    for name in ("users", "video-results", "storage-events", "trim-results"):
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


async def request_upload(http: aiohttp.ClientSession, catalog: LoneCatalog) -> dict[str, Any]:
    async with http.get(
        f"{catalog.url}/video/upload/",
        params={"file_content_type": "video/mp4", "file_name": "a.mp4"},
        headers=catalog.headers(),
    ) as response:
        assert response.status == 200
        return dict(await response.json())


async def upload(http: aiohttp.ClientSession, catalog: LoneCatalog) -> str:
    instructions = await request_upload(http, catalog)
    stored = await upload_to_storage(http, instructions, b"not really a video")
    assert stored.status in {200, 201, 204}
    return str(instructions["signatures"]["key"])


async def unprocessed(http: aiohttp.ClientSession, catalog: LoneCatalog) -> list[dict[str, Any]]:
    async with http.get(f"{catalog.url}/video/my/", headers=catalog.headers()) as response:
        assert response.status == 200
        return list((await response.json())["unprocessed_videos"])
