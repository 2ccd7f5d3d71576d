"""The SeaweedFS upload bridge (`devstack.seaweedfs_events`) on real servers: this
module's embedded stores, or a private SeaweedFS or RabbitMQ node that a test takes down.

Stand-ins play the four services (they need no store); the bridge itself is the real
process `start_services` starts for a store that is an embedded SeaweedFS. Each test
reads what the bridge publishes from a queue of its own bound to the exchange, and
checks it with catalog's own reading of MinIO's notifications.

"No announcement" cannot be waited for; it is shown by order instead: events under
the prefix reach the bridge in the filer's order, and it publishes them in that
order, so when the next message is a later upload's, nothing came before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote_plus, urlsplit

import aio_pika
import aio_pika.abc
import aiohttp
import pytest
from minio import Minio
from minio.commonconfig import Tags
from minio.datatypes import PostPolicy

from devstack.s3_server import S3Credentials, embedded_filer, s3_client
from devstack.seaweedfs_events import PROCESS_NAME, TailOutput
from devstack.services import RunningServices, start_services
from devstack.stores import StoreEndpoints, StoreSettings, start_stores
from services.catalog.hosting.storage_notifications import translate_notification
from shared.events import StorageObjectCreated
from tests.devstack.stand_in_service import commands
from tests.e2e.storage_outage import PrivateS3, private_s3
from tests.polling import eventually
from tests.shared.rabbitmq_outage import PrivateNode, private_node
from tests.stack_cleanup import remove_bucket

#: The bridge must announce an upload this soon after storage answered the POST.
WITHIN_SECONDS = 2.0


@dataclass(frozen=True)
class Announced:
    """One message the bridge published, as catalog reads it, and when it came."""

    key: str
    size: int
    event_name: str
    arrived: float


class Announcements:
    """What the bridge publishes, read from a queue bound to its exchange."""

    def __init__(self, bucket: str) -> None:
        self._bucket = bucket
        self._arrived: asyncio.Queue[tuple[float, aio_pika.abc.AbstractIncomingMessage]]
        self._arrived = asyncio.Queue()

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        self._arrived.put_nowait((time.monotonic(), message))

    async def next(self, within: float = 10.0) -> Announced:
        """The next message, checked to be MinIO's format as catalog reads it."""
        arrived, message = await asyncio.wait_for(self._arrived.get(), within)
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        body = json.loads(message.body)
        [record] = body["Records"]
        assert body["EventName"] == record["eventName"]
        assert body["Key"] == f"{self._bucket}/{unquote_plus(record['s3']['object']['key'])}"
        # Exactly what catalog makes of it (`storage_events_source`).
        envelope = translate_notification(message.body, self._bucket)
        created = StorageObjectCreated.model_validate(envelope.data)
        return Announced(created.key, created.size, record["eventName"], arrived)

    async def until(self, key: str, within: float = 30.0) -> Announced:
        """The announcement of `key`, skipping others (replays after a restart)."""
        deadline = time.monotonic() + within
        while (announced := await self.next(deadline - time.monotonic())).key != key:
            pass
        return announced


@contextlib.asynccontextmanager
async def listening(
    amqp_url: str, exchange: str, announcements: Announcements
) -> AsyncIterator[None]:
    """Read the bridge's exchange into `announcements` through a durable queue (it
    outlives a broker restart: listening again after one finds what came meanwhile)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_exchange(
            exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(_tap(exchange), durable=True)
        await queue.bind(declared)
        await queue.consume(announcements.on_message)
        yield
    finally:
        with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError):
            await connection.close()  # it may have died with the broker


def _tap(exchange: str) -> str:
    return f"{exchange}.test-tap"


async def _delete(amqp_url: str, exchange: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(_tap(exchange))
        await channel.exchange_delete(exchange)


@dataclass(frozen=True)
class Bridged:
    """Stand-in services on one store, the real bridge, and what it announces."""

    running: RunningServices
    s3: Minio
    s3_endpoint: str
    bucket: str
    amqp_url: str
    exchange: str
    announcements: Announcements

    @property
    def bridge_ready_url(self) -> str:
        return f"{self.running.launches[PROCESS_NAME].ready_url}/ready"


@contextlib.asynccontextmanager
async def bridged(
    run_dir: Path, stores: StoreEndpoints, **overrides: str
) -> AsyncIterator[Bridged]:
    """Stand-in services on `stores` (with `overrides`), a bucket and an exchange of
    their own; the bridge starts with them because their S3 store is SeaweedFS."""
    name = f"events-{uuid.uuid4().hex[:8]}"
    env = {
        **stores.service_env(),
        "KINO_S3_BUCKET": f"kino-{name}",
        "KINO_STORAGE_EVENTS_EXCHANGE": f"kino.storage.{name}",
        **overrides,
    }
    credentials = S3Credentials(env["KINO_S3_ACCESS_KEY"], env["KINO_S3_SECRET_KEY"])
    s3 = s3_client(env["KINO_S3_ENDPOINT"], credentials)
    bucket, amqp_url = env["KINO_S3_BUCKET"], env["KINO_AMQP_URL"]
    exchange = env["KINO_STORAGE_EVENTS_EXCHANGE"]
    heard = Announcements(bucket)
    await asyncio.to_thread(s3.make_bucket, bucket)
    try:
        async with listening(amqp_url, exchange, heard):
            services = start_services(env, run_dir / name, commands=commands())
            with contextlib.ExitStack() as stop:
                running = await asyncio.to_thread(stop.enter_context, services)
                try:
                    yield Bridged(
                        running, s3, env["KINO_S3_ENDPOINT"], bucket, amqp_url, exchange, heard
                    )
                finally:
                    await asyncio.to_thread(stop.close)
    finally:
        await _delete(amqp_url, exchange)
        await asyncio.to_thread(remove_bucket, s3, bucket)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreEndpoints]:
    """Embedded stores, whatever the environment says (as in `test_stores.py`): the
    bridge exists for SeaweedFS."""
    with start_stores(tmp_path_factory.mktemp("stores"), settings=StoreSettings()) as endpoints:
        assert embedded_filer(endpoints.s3_endpoint) is not None
        yield endpoints


@pytest.fixture
async def bridge(stores: StoreEndpoints, tmp_path: Path) -> AsyncIterator[Bridged]:
    async with bridged(tmp_path, stores) as running:
        yield running


# -- uploads as clients make them -------------------------------------------------


def post_form(s3: Minio, endpoint: str, bucket: str, key: str) -> tuple[str, dict[str, str]]:
    """URL and form fields of a presigned POST of `key`, as catalog hands them out."""
    policy = PostPolicy(bucket, datetime.now(UTC) + timedelta(minutes=10))
    policy.add_equals_condition("key", key)
    policy.add_content_length_range_condition(1, 64 * 1024 * 1024)
    return f"{endpoint}/{bucket}", {**s3.presigned_post_policy(policy), "key": key}


async def post_upload(bridged: Bridged, key: str, data: bytes) -> float:
    """POST `data` to storage as a browser would; returns when storage answered."""
    url, fields = post_form(bridged.s3, bridged.s3_endpoint, bridged.bucket, key)
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", data, filename="clip.mp4", content_type="video/mp4")
    async with aiohttp.ClientSession() as http, http.post(url, data=form) as response:
        assert response.status == 204, await response.text()
        return time.monotonic()


class SlowPost:
    """A presigned POST sent in parts over one connection, to leave it unfinished."""

    def __init__(self, bridged: Bridged, key: str, size: int) -> None:
        self.key = key
        url, fields = post_form(bridged.s3, bridged.s3_endpoint, bridged.bucket, key)
        boundary = uuid.uuid4().hex
        disposition = "Content-Disposition: form-data; name"
        head = b"".join(
            f'--{boundary}\r\n{disposition}="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._url = urlsplit(url)
        self._request = (
            f"POST {self._url.path} HTTP/1.1\r\nHost: {self._url.netloc}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(head) + size + len(self._tail)}\r\n\r\n"
        ).encode() + head
        self._data = os.urandom(size)
        self._sent = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    async def send(self, fraction: float) -> None:
        """Send the request and the file up to `fraction` of it."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._url.hostname, self._url.port
            )
            self._writer.write(self._request)
        upto = int(len(self._data) * fraction)
        self._writer.write(self._data[self._sent : upto])
        await self._writer.drain()
        self._sent = upto

    async def finish(self) -> float:
        """Send the rest; returns when storage answered."""
        await self.send(1.0)
        assert self._writer is not None
        assert self._reader is not None
        self._writer.write(self._tail)
        await self._writer.drain()
        status = await self._reader.readline()
        assert b" 204 " in status, status
        answered = time.monotonic()
        self.abort()
        return answered

    def abort(self) -> None:
        """Drop the connection, as a client that goes away does."""
        if self._writer is not None:
            self._writer.close()


def unique_key(name: str) -> str:
    return f"incoming/{name}-{uuid.uuid4().hex[:8]}"


# -- tests ----------------------------------------------------------------------------


def test_the_tails_output_is_read_however_it_is_cut() -> None:
    documents = [
        {"directory": "/buckets/b/incoming", "tsNs": "1", "eventNotification": {"name": "été"}},
        {"directory": "/buckets/b/incoming", "tsNs": "2", "eventNotification": None},
    ]
    message = "tail 127.0.0.1:8888: subscribing filer meta change: rpc error"
    data = ("".join(json.dumps(d, indent=2) + "\n" for d in documents) + message + "\n").encode()
    output = TailOutput()

    found = [item for i in range(len(data)) for item in output.feed(data[i : i + 1])]

    assert found == [*documents, message]


async def test_an_upload_is_announced_as_minio_announces_it_within_a_second(
    bridge: Bridged,
) -> None:
    key = unique_key("clip")
    data = os.urandom(3 * 1024 * 1024)

    answered = await post_upload(bridge, key, data)
    announced = await bridge.announcements.next()

    assert (announced.key, announced.size) == (key, len(data))
    assert announced.event_name == "s3:ObjectCreated:Put"
    assert announced.arrived - answered < WITHIN_SECONDS


async def test_only_complete_objects_under_incoming_are_announced(bridge: Bridged) -> None:
    slow = SlowPost(bridge, unique_key("slow"), 6 * 1024 * 1024)
    await slow.send(0.9)  # in flight, unfinished
    aborted = SlowPost(bridge, unique_key("aborted"), 2 * 1024 * 1024)
    await aborted.send(0.5)
    aborted.abort()
    elsewhere = f"sources/{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(
        bridge.s3.put_object, bridge.bucket, elsewhere, io.BytesIO(b"not incoming"), 12
    )
    removed = unique_key("removed")
    await post_upload(bridge, removed, b"soon gone")
    assert (await bridge.announcements.next()).key == removed
    tags = Tags.new_object_tags()
    tags["state"] = "tagged"  # new metadata, same content: not a new object
    await asyncio.to_thread(bridge.s3.set_object_tags, bridge.bucket, removed, tags)
    await asyncio.to_thread(bridge.s3.remove_object, bridge.bucket, removed)
    # An 11 MiB multipart upload: its parts are stored before it completes.
    multipart = unique_key("multipart")
    await asyncio.to_thread(
        bridge.s3.put_object,
        bridge.bucket,
        multipart,
        io.BytesIO(os.urandom(11 * 1024 * 1024)),
        -1,
        part_size=5 * 1024 * 1024,
    )

    # Neither the unfinished, the aborted, the other key, the tags nor the removal
    # came first.
    announced = await bridge.announcements.next()
    assert (announced.key, announced.size) == (multipart, 11 * 1024 * 1024)
    assert announced.event_name == "s3:ObjectCreated:CompleteMultipartUpload"
    answered = await slow.finish()
    announced = await bridge.announcements.next()
    assert (announced.key, announced.size) == (slow.key, 6 * 1024 * 1024)
    assert announced.arrived - answered < WITHIN_SECONDS
    sentinel = unique_key("sentinel")
    await post_upload(bridge, sentinel, b"last")
    assert (await bridge.announcements.next()).key == sentinel


async def test_a_restarted_bridge_announces_what_landed_while_it_was_down(
    bridge: Bridged,
) -> None:
    before = unique_key("before")
    await post_upload(bridge, before, b"before")
    assert (await bridge.announcements.next()).key == before
    launch = bridge.running.launches[PROCESS_NAME]
    old = bridge.running.processes[PROCESS_NAME]

    old.signal_group(signal.SIGKILL)  # as the supervisor does before restarting
    await asyncio.to_thread(old.popen.wait)
    during = unique_key("during")
    await post_upload(bridge, during, b"while the bridge was down")
    bridge.running.processes[PROCESS_NAME] = launch.spawn(append=True)

    # It replays recent events: `before` again (harmless, catalog ignores a key that
    # is not pending), then what it missed.
    announced = [await bridge.announcements.next(within=30) for _ in range(2)]
    assert [a.key for a in announced] == [before, during]


async def test_the_bridge_follows_again_after_seaweedfs_was_killed(
    stores: StoreEndpoints, tmp_path: Path
) -> None:
    with private_s3(tmp_path / "s3") as s3:
        async with bridged(tmp_path, stores, **_store_env(s3)) as bridge:
            await asyncio.to_thread(s3.kill)
            await eventually(lambda: _answers(bridge.bridge_ready_url, 503), within=10)
            await asyncio.to_thread(s3.start)
            await eventually(lambda: _answers(bridge.bridge_ready_url, 200), within=15)
            key = unique_key("after-restart")

            answered = await post_upload(bridge, key, b"after the restart")

            announced = await bridge.announcements.next()
            assert announced.key == key
            assert announced.arrived - answered < WITHIN_SECONDS


async def test_the_bridge_announces_after_a_broker_outage_what_landed_during_it(
    stores: StoreEndpoints, tmp_path: Path, node: PrivateNode
) -> None:
    async with bridged(tmp_path, stores, KINO_AMQP_URL=node.url) as bridge:
        first = unique_key("first")
        await post_upload(bridge, first, b"first")
        assert (await bridge.announcements.next()).key == first

        await asyncio.to_thread(node.stop_app)
        await eventually(lambda: _answers(bridge.bridge_ready_url, 503), within=10)
        during = unique_key("during")
        await post_upload(bridge, during, b"while the broker was down")
        await asyncio.to_thread(node.start_app)

        # The test's own connection died with the broker: listen again, on the queue
        # that kept what came meanwhile.
        async with listening(bridge.amqp_url, bridge.exchange, bridge.announcements):
            assert (await bridge.announcements.until(during, within=30)).key == during
        await eventually(lambda: _answers(bridge.bridge_ready_url, 200), within=15)


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with private_node() as running:
        yield running


def _store_env(s3: PrivateS3) -> Mapping[str, str]:
    return {
        "KINO_S3_ENDPOINT": s3.endpoint,
        "KINO_S3_ACCESS_KEY": s3.credentials.access_key,
        "KINO_S3_SECRET_KEY": s3.credentials.secret_key,
    }


async def _answers(url: str, status: int) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status == status
    except aiohttp.ClientError:
        return False
