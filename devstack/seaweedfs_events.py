"""Upload notifications for the embedded SeaweedFS: its filer's metadata stream,
published as MinIO's S3 event notifications, so catalog learns of an upload at once.

In production MinIO publishes an `s3:ObjectCreated:*` notification (S3 event JSON,
one record per message) to a fanout exchange, and catalog consumes it
(`services/catalog/hosting/storage_notifications.py`). SeaweedFS has no bucket
notifications (its S3 API answers every bucket's notification configuration with an
empty one), so without this bridge catalog only learns of an upload from its
reconciler, which lists `incoming/` every `KINO_UPLOAD_RECONCILE_INTERVAL_SECONDS`.

What SeaweedFS does have is the filer's metadata subscription: every change of an
entry, streamed over gRPC from any point in time (`since_ns`), read here through
`weed filer.meta.tail -pathPrefix=/buckets/<bucket>/incoming/ -timeAgo=…`, which
prints each event as indented JSON. As checked on `weed` 4.48: an S3 PUT, a
presigned POST (even a slow 24 MiB one) and a completed multipart upload each make
one event, a new file entry with its final size, written when the object is complete;
an aborted POST makes none; multipart parts live under `/buckets/<bucket>/.uploads/`,
outside the prefix. So a new file entry under the prefix is a complete object, and
that, only that, is announced. Deletes, directories and updates that keep an
object's content (tags, metadata) are not.

The bridge runs as its own process (`python -m devstack.seaweedfs_events`), started
by `devstack.services` after the services and restarted like them by `make run`'s
supervisor. It gets catalog's own environment and reads the bucket, the exchange
(`KINO_STORAGE_EVENTS_EXCHANGE`) and the broker with catalog's settings class, so
they always match what catalog consumes. It answers `/ready` (200 while it is
connected to the broker and following the filer) on `KINO_HTTP_PORT`.

Failures and restarts: the bridge remembers the time of the last filer event it
handled. When `weed filer.meta.tail` ends (the filer went away) it is started again
from that time once the filer accepts connections; when the broker connection
fails, the bridge reconnects and follows again from that time; both retried with a
delay growing from 0.2 s to 1 s. Events already handled are skipped by time (the
filer's log buffer makes its event times strictly increasing), so nothing is
announced twice within one run of the bridge. A new process (after a crash the
supervisor restarts it) replays the last `REPLAY_ON_START_SECONDS` of events: what
it announces again is harmless, since catalog's handling is one guarded
pending → processing transition and ignores a key whose video is not pending. An
upload the bridge never saw (stored while the bridge was down for longer than that)
is found by catalog's reconciler, which stays the safety net.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import aio_pika
import aio_pika.abc
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiohttp import web

from devstack.errors import DevstackError
from devstack.ports import WEED_GRPC_OFFSET
from devstack.s3_server import find_weed
from services.catalog.settings import CatalogSettings
from shared.object_keys import INCOMING_PREFIX

log = logging.getLogger("devstack.seaweedfs_events")

#: The bridge's process name in `make run` (its log is `logs/s3-events.log`).
PROCESS_NAME = "s3-events"

#: The filer to follow, `host:port` of its HTTP port (gRPC is that port + 10000).
FILER_ENV = "KINO_DEV_SEAWEEDFS_FILER"

#: Where the filer keeps the S3 buckets (`weed mini`'s default).
BUCKETS_DIR = "/buckets"

#: A new bridge process first replays this much of the filer's recent events, so that
#: a restart (a crash, the supervisor's restart) does not lose what happened meanwhile.
REPLAY_ON_START_SECONDS = 300

#: `-timeAgo` starts the tail this much before the last event handled: the tail's
#: clock starts a little after ours, and an event in that gap must not be skipped.
#: What is replayed twice is recognised by its time and skipped.
RESUME_OVERLAP_SECONDS = 60

#: Delays before connecting again to the broker, or following the filer again: both
#: are cheap to try on loopback, and an upload waits for them.
FIRST_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 1.0
CONNECT_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 10.0

#: The filer marks an object a completed multipart upload made with this attribute.
MULTIPART_UPLOAD_ID = "X-Seaweedfs-Upload-Id"
#: And every S3 object with its ETag (base64 in the event, as all extended attributes).
ETAG_ATTRIBUTE = "Seaweed-X-Amz-ETag"

#: What a failed broker session raises (and the bridge retries). Lost connections are
#: `OSError`s (`ConnectionError`), and so is a broker that does not answer.
BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, OSError, TimeoutError)


@dataclass(frozen=True)
class ObjectCreated:
    """A complete object that appeared under the followed prefix."""

    bucket: str
    key: str
    size: int
    #: The filer's time of the event, in nanoseconds since the epoch.
    ts_ns: int
    etag: str
    content_type: str
    multipart: bool

    @property
    def event_name(self) -> str:
        # The filer's entry cannot tell a POST from a PUT; a multipart upload says so.
        return (
            "s3:ObjectCreated:CompleteMultipartUpload" if self.multipart else "s3:ObjectCreated:Put"
        )

    def notification(self) -> bytes:
        """The message MinIO's AMQP target would publish: one record, key URL-encoded."""
        event_time = datetime.fromtimestamp(self.ts_ns / 1e9, UTC)
        record = {
            "eventVersion": "2.0",
            "eventSource": "seaweedfs:s3",
            "awsRegion": "",
            "eventTime": event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "eventName": self.event_name,
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "Config",
                "bucket": {"name": self.bucket, "arn": f"arn:aws:s3:::{self.bucket}"},
                "object": {
                    "key": quote_plus(self.key, safe=""),
                    "size": self.size,
                    "eTag": self.etag,
                    "contentType": self.content_type,
                    # MinIO's sequencer: the event time in nanoseconds, hexadecimal.
                    "sequencer": f"{self.ts_ns:X}",
                },
            },
        }
        message = {"EventName": self.event_name, "Key": f"{self.bucket}/{self.key}"}
        return json.dumps({**message, "Records": [record]}).encode()


def object_created(event: Mapping[str, Any], bucket: str) -> ObjectCreated | None:
    """The complete object under `incoming/` of `bucket` that a filer event (one
    document of `weed filer.meta.tail`) announces, or None when it announces none.

    Only the document's own event is read: a document may also carry a batch of later
    events under `events`, which the tail prints again one by one.
    """
    notification = event.get("eventNotification") or {}
    new = notification.get("newEntry")
    if not new or new.get("isDirectory"):
        return None  # a delete, or a directory
    directory = event.get("directory", "")
    parent = notification.get("newParentPath") or directory
    root = f"{BUCKETS_DIR}/{bucket}/"
    path = f"{parent}/{new['name']}"
    if not path.startswith(root + INCOMING_PREFIX):
        return None  # moved out of the prefix
    old = notification.get("oldEntry") or {}
    same_place = parent == directory and old.get("name") == new["name"]
    if same_place and _content(old) == _content(new):
        return None  # the same object with other metadata
    attributes = new.get("attributes") or {}
    extended = new.get("extended") or {}
    etag = extended.get(ETAG_ATTRIBUTE)
    return ObjectCreated(
        bucket=bucket,
        key=path.removeprefix(root),
        size=int(attributes.get("fileSize", 0)),
        ts_ns=int(event["tsNs"]),
        etag=base64.b64decode(etag).decode(errors="replace") if etag else "",
        content_type=attributes.get("mime") or "",
        multipart=MULTIPART_UPLOAD_ID in extended,
    )


def _content(entry: Mapping[str, Any]) -> tuple[list[tuple[Any, Any, Any]], Any]:
    """What an entry's bytes are: where each chunk is stored (its `fid`: an update
    event may spell the same chunk's `fileId` out or leave it empty), or its inline
    content."""
    chunks = [
        (chunk.get("fid") or chunk.get("fileId"), chunk.get("offset"), chunk.get("size"))
        for chunk in entry.get("chunks") or ()
    ]
    return chunks, entry.get("content")


class TailOutput:
    """Splits `weed filer.meta.tail`'s output into its JSON documents (indented, one
    after the other) and its other lines (what it prints when it gives up)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._json = json.JSONDecoder()
        self._text = ""

    def feed(self, data: bytes) -> list[dict[str, Any] | str]:
        """The documents and lines completed by `data`, in order."""
        self._text += self._decoder.decode(data)
        found: list[dict[str, Any] | str] = []
        while text := self._text.lstrip():
            if text.startswith("{"):
                try:
                    document, end = self._json.raw_decode(text)
                except json.JSONDecodeError:
                    break  # the rest of the document has not come yet
                found.append(document)
                self._text = text[end:]
            else:
                line, newline, rest = text.partition("\n")
                if not newline:
                    break
                found.append(line)
                self._text = rest
        else:
            self._text = ""
        return found


@dataclass(frozen=True)
class BridgeConfig:
    """What the bridge follows and where it publishes."""

    weed: str
    filer: str
    bucket: str
    amqp_url: str
    exchange: str
    http_host: str
    http_port: int

    @classmethod
    def from_environ(cls) -> BridgeConfig:
        """The filer from `KINO_DEV_SEAWEEDFS_FILER`, the rest as catalog reads it."""
        filer = os.environ.get(FILER_ENV, "").strip()
        if not filer:
            raise DevstackError(f"{FILER_ENV} is not set (host:port of the SeaweedFS filer)")
        catalog = CatalogSettings()
        return cls(
            weed=find_weed(),
            filer=filer,
            bucket=catalog.s3_bucket,
            amqp_url=catalog.amqp_url,
            exchange=catalog.storage_events_exchange,
            http_host=catalog.http_host,
            http_port=catalog.http_port,
        )

    @property
    def path_prefix(self) -> str:
        return f"{BUCKETS_DIR}/{self.bucket}/{INCOMING_PREFIX}"

    @property
    def filer_grpc(self) -> tuple[str, int]:
        """Where `weed filer.meta.tail` subscribes: the filer's gRPC port."""
        host, _, port = self.filer.rpartition(":")
        return host, int(port) + WEED_GRPC_OFFSET


class Bridge:
    """Follows the filer and publishes a notification for each complete upload."""

    def __init__(self, config: BridgeConfig) -> None:
        self._config = config
        #: Time (ns) of the last filer event handled; following resumes after it.
        self._handled_ns = time.time_ns() - REPLAY_ON_START_SECONDS * 10**9
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._tail: asyncio.subprocess.Process | None = None
        self._filer_down = False

    @property
    def ready(self) -> bool:
        """Connected to the broker and following the filer."""
        connected = self._connection is not None and not self._connection.is_closed
        return connected and self._tail is not None and self._tail.returncode is None

    async def run(self) -> None:
        """Publish until cancelled; a failed broker session is started again."""
        delay = FIRST_RETRY_DELAY
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except BROKER_ERRORS as problem:
                if time.monotonic() - started > MAX_RETRY_DELAY:
                    delay = FIRST_RETRY_DELAY  # it worked for a while: a new outage
                log.warning("broker: %r; connecting again in %.1f s", problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _session(self) -> None:
        """One broker connection: follow the filer until the connection fails."""
        connection = await aio_pika.connect(self._config.amqp_url, timeout=CONNECT_TIMEOUT)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            # As catalog declares it (`storage_events_source`), so either may come first.
            exchange = await channel.declare_exchange(
                self._config.exchange, aio_pika.ExchangeType.FANOUT, durable=True
            )
            lost: asyncio.Future[BaseException | None] = asyncio.Future()

            def on_close(_: object, problem: BaseException | None = None) -> None:
                if not lost.done():
                    lost.set_result(problem)

            connection.close_callbacks.add(on_close)
            self._connection = connection
            log.info("publishing to exchange %s", self._config.exchange)
            follow = asyncio.create_task(self._follow(exchange))
            either: set[asyncio.Future[Any]] = {follow, lost}
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                follow.cancel()
                await asyncio.wait({follow})
            # Following never ends by itself: it failed (a publish), or it was stopped
            # because the connection closed.
            if not follow.cancelled() and (problem := follow.exception()) is not None:
                raise problem
            raise ConnectionError(f"connection closed: {lost.result()!r}")

    async def _follow(self, exchange: aio_pika.abc.AbstractExchange) -> None:
        """Follow the filer for as long as the broker session lasts: `weed
        filer.meta.tail` exits when the filer goes away, and is started again once the
        filer accepts connections (so that `/ready` does not count a tail bound to fail)."""
        delay = FIRST_RETRY_DELAY
        while True:
            if await self._filer_answers():
                started = time.monotonic()
                code = await self._tail_once(exchange)
                if time.monotonic() - started > MAX_RETRY_DELAY:
                    delay = FIRST_RETRY_DELAY  # it worked for a while: a new outage
                log.warning("filer.meta.tail exited with code %d", code)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _filer_answers(self) -> bool:
        """Whether the filer's gRPC port accepts a connection; says so when that changes."""
        host, port = self._config.filer_grpc
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
        except (OSError, TimeoutError):
            if not self._filer_down:
                log.warning("the filer at %s:%d does not answer; waiting for it", host, port)
            self._filer_down = True
            return False
        writer.close()  # only asked whether it connects
        self._filer_down = False
        return True

    async def _tail_once(self, exchange: aio_pika.abc.AbstractExchange) -> int:
        """Follow from just before the last event handled until the tail exits."""
        since_ns = self._handled_ns - RESUME_OVERLAP_SECONDS * 10**9
        process = await asyncio.create_subprocess_exec(
            self._config.weed,
            "-logtostderr",
            "filer.meta.tail",
            f"-filer={self._config.filer}",
            f"-pathPrefix={self._config.path_prefix}",
            f"-timeAgo={max(time.time_ns() - since_ns, 0)}ns",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        self._tail = process
        log.info("following %s on filer %s", self._config.path_prefix, self._config.filer)
        try:
            output = TailOutput()
            while chunk := await process.stdout.read(1 << 16):
                for item in output.feed(chunk):
                    if isinstance(item, str):
                        log.warning("filer.meta.tail: %s", item)
                    else:
                        await self._handle(item, exchange)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            code = await process.wait()
        return code

    async def _handle(self, event: dict[str, Any], exchange: aio_pika.abc.AbstractExchange) -> None:
        """Publish the notification an event calls for (confirmed), then mark it handled."""
        try:
            ts_ns = int(event["tsNs"])
            created = object_created(event, self._config.bucket)
        except (KeyError, TypeError, ValueError) as problem:
            # Not expected from `weed`; the reconciler finds such an upload anyway.
            log.error("skipping a filer event that could not be read: %r", problem)
            return
        if ts_ns <= self._handled_ns:
            return  # handled before the tail was started again
        if created is not None:
            message = aio_pika.Message(
                created.notification(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            # Not mandatory, as MinIO's: with no queue bound (catalog never ran on this
            # exchange) the message is dropped, and the reconciler finds the upload.
            await exchange.publish(
                message, routing_key="", mandatory=False, timeout=PUBLISH_TIMEOUT
            )
            log.info(
                "announced %s (%d bytes), %.0f ms after it was stored",
                created.key,
                created.size,
                (time.time_ns() - ts_ns) / 1e6,
            )
        self._handled_ns = ts_ns


async def serve(config: BridgeConfig) -> None:
    """Run the bridge and its `/ready` until SIGTERM or SIGINT."""
    bridge = Bridge(config)

    async def ready(_: web.Request) -> web.Response:
        if bridge.ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    app = web.Application()
    app.router.add_get("/ready", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.http_host, config.http_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.create_task(bridge.run())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (running, stopping):
            task.cancel()
        await asyncio.wait({running})
        await runner.cleanup()
    if not running.cancelled() and (problem := running.exception()) is not None:
        raise problem  # the bridge failed (a bug): exit, the supervisor starts it again


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    try:
        config = BridgeConfig.from_environ()
    except DevstackError as error:
        print(f"{PROCESS_NAME}: {error.message}", file=sys.stderr, flush=True)
        return 1
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
