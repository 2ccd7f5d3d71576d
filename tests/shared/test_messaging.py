"""`shared.messaging.Broker` against the real RabbitMQ.

Each test gets its own exchange and queue prefix, so no test sees another's
messages; the queues it declares are deleted at the end of the session and the
exchange at the end of the test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from devstack.stores import StoreEndpoints
from shared.config import BrokerSettings
from shared.events import Envelope, UserRegistered
from shared.messaging import (
    ATTEMPT_HEADER,
    ERROR_HEADER,
    Broker,
    PermanentFailure,
    QueueNames,
    Subscription,
    connected_broker,
)

SERVICE = "testsvc"
TIMEOUT = 10.0


def make_event() -> UserRegistered:
    suffix = uuid.uuid4().hex[:8]
    return UserRegistered(user_id=f"user-{suffix}", email=f"{suffix}@example.org")


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
async def amqp(stores: StoreEndpoints) -> AsyncIterator[AbstractConnection]:
    """A plain aio-pika connection for the test's own look at the broker."""
    connection = await aio_pika.connect(stores.amqp_url)
    async with connection:
        yield connection


@pytest.fixture
async def settings(
    stores: StoreEndpoints, namespace: str, amqp: AbstractConnection
) -> AsyncIterator[BrokerSettings]:
    tag = uuid.uuid4().hex[:6]
    settings = BrokerSettings(
        amqp_url=stores.amqp_url,
        amqp_exchange=f"kino.{namespace}.{tag}",
        amqp_queue_prefix=f"{namespace}.{tag}",
        amqp_retry_delay_seconds=0.2,
        amqp_max_attempts=3,
        amqp_prefetch=4,
    )
    yield settings
    channel = await amqp.channel()
    await channel.exchange_delete(settings.amqp_exchange)
    await channel.close()


@pytest.fixture
async def broker(settings: BrokerSettings) -> AsyncIterator[Broker]:
    async with connected_broker(settings, SERVICE) as broker:
        yield broker


@pytest.fixture
def subscription() -> Subscription:
    """A subscription with a unique name; each test routes its own handler."""
    return Subscription(name=f"sub-{uuid.uuid4().hex[:6]}")


# -- helpers -------------------------------------------------------------------


async def start(broker: Broker, subscription: Subscription, cleanup: list[str]) -> QueueNames:
    names = broker.queue_names(subscription)
    cleanup.extend([names.main, names.retry, names.dead_letter])
    return await broker.consume(subscription)


async def probe_queue(
    amqp: AbstractConnection, settings: BrokerSettings, cleanup: list[str]
) -> AbstractQueue:
    """A queue of the test's own, bound to `user.registered` on the test's exchange."""
    name = f"{settings.amqp_queue_prefix}.probe.{uuid.uuid4().hex[:6]}"
    cleanup.append(name)
    channel = await amqp.channel()
    exchange = await channel.declare_exchange(
        settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(name, durable=True)
    await queue.bind(exchange, routing_key=UserRegistered.event_type)
    return queue


async def queue_state(amqp: AbstractConnection, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue; unacked messages are not counted."""
    channel = await amqp.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        result = queue.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        await channel.close()


async def ready(amqp: AbstractConnection, name: str) -> int:
    return (await queue_state(amqp, name))[0]


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, within: float = TIMEOUT, what: str
) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def take_one(amqp: AbstractConnection, name: str) -> AbstractIncomingMessage:
    """Wait for a message in a queue and take it out (polling with a deadline)."""
    channel = await amqp.channel()
    queue = await channel.get_queue(name, ensure=False)
    deadline = time.monotonic() + TIMEOUT
    while (message := await queue.get(no_ack=True, fail=False)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no message arrived in {name}")
        await asyncio.sleep(0.02)
    await channel.close()
    return message


async def publish_raw(
    amqp: AbstractConnection, settings: BrokerSettings, body: bytes, routing_key: str
) -> None:
    channel = await amqp.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(settings.amqp_exchange, ensure=False)
    await exchange.publish(
        aio_pika.Message(body, content_type="application/json"), routing_key=routing_key
    )
    await channel.close()


# -- publishing ----------------------------------------------------------------


async def test_publish_returns_after_confirm_and_delivers_the_envelope(
    broker: Broker,
    settings: BrokerSettings,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    queue = await probe_queue(amqp, settings, amqp_cleanup)
    event = make_event()

    envelope = await broker.publish(event, correlation_id="req-123")

    # Confirmed means routed and stored: the message is there the moment publish returns.
    message = await queue.get(no_ack=True, fail=False)
    assert message is not None, "publish() returned before the broker had the message"
    assert await queue.get(no_ack=True, fail=False) is None, "more than one message arrived"
    received = Envelope.model_validate_json(message.body)
    assert received == envelope
    assert received.id == envelope.id
    assert received.type == "user.registered"
    assert received.correlation_id == "req-123"
    assert received.data == {"user_id": event.user_id, "email": event.email}
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert int(message.delivery_mode) == 2
    assert message.content_type == "application/json"
    assert message.message_id == str(envelope.id)
    assert message.correlation_id == "req-123"
    assert message.routing_key == "user.registered"


async def test_publish_envelope_with_invalid_data_raises_before_sending(
    broker: Broker,
    settings: BrokerSettings,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    queue = await probe_queue(amqp, settings, amqp_cleanup)
    invalid = Envelope(type=UserRegistered.event_type, version=1, data={"user_id": "u-1"})

    with pytest.raises(ValidationError, match="email"):
        await broker.publish_envelope(invalid)

    # Messages of one channel stay in order: if the invalid one had gone out, it
    # would be in front of this one.
    sentinel = await broker.publish(make_event(), correlation_id=None)
    first = await queue.get(no_ack=True, fail=False)
    assert first is not None
    assert Envelope.model_validate_json(first.body).id == sentinel.id
    assert await queue.get(no_ack=True, fail=False) is None


async def test_publish_envelope_of_unknown_type_raises_before_sending(
    broker: Broker,
    settings: BrokerSettings,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    channel = await amqp.channel()
    name = f"{settings.amqp_queue_prefix}.probe-unknown"
    amqp_cleanup.append(name)
    queue = await channel.declare_queue(name, durable=True)
    await queue.bind(settings.amqp_exchange, routing_key="#")
    unknown = Envelope(type="user.teleported", version=1, data={"user_id": "u-1"})

    with pytest.raises(ValueError, match="unknown event type"):
        await broker.publish_envelope(unknown)

    sentinel = await broker.publish(make_event(), correlation_id=None)
    first = await queue.get(no_ack=True, fail=False)
    assert first is not None
    assert Envelope.model_validate_json(first.body).id == sentinel.id


# -- consuming -----------------------------------------------------------------


async def test_handler_error_is_retried_and_succeeds_on_second_delivery(
    broker: Broker,
    subscription: Subscription,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    calls: list[uuid.UUID] = []
    succeeded = asyncio.Event()

    @subscription.on(UserRegistered)
    async def handle(event: UserRegistered, envelope: Envelope) -> None:
        calls.append(envelope.id)
        if len(calls) == 1:
            raise RuntimeError("transient hiccup")
        succeeded.set()

    names = await start(broker, subscription, amqp_cleanup)
    envelope = await broker.publish(make_event(), correlation_id="req-retry")

    await asyncio.wait_for(succeeded.wait(), TIMEOUT)
    # Waits for the handler's ack, then closes the channel: an unacked message
    # would be back in the main queue.
    await broker.stop_consuming(grace_seconds=TIMEOUT)

    assert calls == [envelope.id, envelope.id]
    assert await ready(amqp, names.main) == 0
    assert await ready(amqp, names.retry) == 0
    assert await ready(amqp, names.dead_letter) == 0


async def test_handler_failing_every_attempt_ends_in_dead_letter_queue(
    broker: Broker,
    settings: BrokerSettings,
    subscription: Subscription,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    calls: list[uuid.UUID] = []

    @subscription.on(UserRegistered)
    async def handle(event: UserRegistered, envelope: Envelope) -> None:
        calls.append(envelope.id)
        raise RuntimeError(f"still broken #{len(calls)}")

    names = await start(broker, subscription, amqp_cleanup)
    envelope = await broker.publish(make_event(), correlation_id="req-dlq")

    dead = await take_one(amqp, names.dead_letter)
    await broker.stop_consuming(grace_seconds=TIMEOUT)

    assert settings.amqp_max_attempts == 3
    assert calls == [envelope.id] * settings.amqp_max_attempts
    assert Envelope.model_validate_json(dead.body).id == envelope.id
    headers: dict[str, Any] = dict(dead.headers or {})
    error = str(headers[ERROR_HEADER])
    assert "RuntimeError" in error
    assert f"still broken #{settings.amqp_max_attempts}" in error
    assert headers[ATTEMPT_HEADER] == settings.amqp_max_attempts
    assert dead.message_id == str(envelope.id)
    assert dead.correlation_id == "req-dlq"
    assert await ready(amqp, names.main) == 0
    assert await ready(amqp, names.retry) == 0
    assert await ready(amqp, names.dead_letter) == 0  # we took the only one


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"this is not json", id="not-json"),
        pytest.param(b'{"type": "user.registered", "data": {}}', id="not-an-envelope"),
        pytest.param(
            Envelope(type=UserRegistered.event_type, version=1, data={"user_id": "u-1"})
            .model_dump_json()
            .encode(),
            id="data-fails-the-model",
        ),
    ],
)
async def test_schema_invalid_message_goes_straight_to_dead_letter_queue(
    body: bytes,
    broker: Broker,
    settings: BrokerSettings,
    subscription: Subscription,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    calls: list[Envelope] = []

    @subscription.on(UserRegistered)
    async def handle(event: UserRegistered, envelope: Envelope) -> None:
        calls.append(envelope)

    names = await start(broker, subscription, amqp_cleanup)
    await publish_raw(amqp, settings, body, routing_key=UserRegistered.event_type)

    dead = await take_one(amqp, names.dead_letter)
    await broker.stop_consuming(grace_seconds=TIMEOUT)

    assert calls == []
    assert dead.body == body
    headers = dict(dead.headers or {})
    assert str(headers[ERROR_HEADER]).startswith("schema:")
    assert ATTEMPT_HEADER not in headers  # never retried
    assert await ready(amqp, names.main) == 0
    assert await ready(amqp, names.retry) == 0


async def test_permanent_failure_goes_to_dead_letter_queue_at_first_attempt(
    broker: Broker,
    subscription: Subscription,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    calls: list[uuid.UUID] = []

    @subscription.on(UserRegistered)
    async def handle(event: UserRegistered, envelope: Envelope) -> None:
        calls.append(envelope.id)
        raise PermanentFailure("cannot ever work")

    names = await start(broker, subscription, amqp_cleanup)
    envelope = await broker.publish(make_event(), correlation_id=None)

    dead = await take_one(amqp, names.dead_letter)
    await broker.stop_consuming(grace_seconds=TIMEOUT)

    assert calls == [envelope.id]
    assert Envelope.model_validate_json(dead.body).id == envelope.id
    headers = dict(dead.headers or {})
    assert headers[ERROR_HEADER] == "permanent: cannot ever work"
    assert ATTEMPT_HEADER not in headers
    assert await ready(amqp, names.main) == 0
    assert await ready(amqp, names.retry) == 0


async def test_message_of_consumer_dying_mid_handler_is_redelivered_to_another(
    settings: BrokerSettings,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    name = f"sub-{uuid.uuid4().hex[:6]}"
    started = asyncio.Event()
    never = asyncio.Event()
    handled: asyncio.Queue[uuid.UUID] = asyncio.Queue()

    dying = Subscription(name=name)

    @dying.on(UserRegistered)
    async def hang(event: UserRegistered, envelope: Envelope) -> None:
        started.set()
        await never.wait()

    survivor = Subscription(name=name)

    @survivor.on(UserRegistered)
    async def handle(event: UserRegistered, envelope: Envelope) -> None:
        await handled.put(envelope.id)

    first = Broker(settings, SERVICE)
    await first.connect()
    names = await start(first, dying, amqp_cleanup)
    envelope = await first.publish(make_event(), correlation_id=None)
    await asyncio.wait_for(started.wait(), TIMEOUT)

    # The process dies: its connection goes away while the handler awaits. A dead
    # process cleans nothing up, so `first.close()` is not called.
    connection = first._connection
    assert connection is not None
    await connection.close()
    assert not first.is_connected

    async with connected_broker(settings, SERVICE) as second:
        await start(second, survivor, amqp_cleanup)
        redelivered = await asyncio.wait_for(handled.get(), TIMEOUT)
        await second.stop_consuming(grace_seconds=TIMEOUT)

    assert redelivered == envelope.id
    assert handled.empty()
    assert await ready(amqp, names.main) == 0
    assert await ready(amqp, names.dead_letter) == 0


async def test_stop_consuming_lets_in_flight_handler_finish_and_ack(
    broker: Broker,
    settings: BrokerSettings,
    subscription: Subscription,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[uuid.UUID] = []

    @subscription.on(UserRegistered)
    async def handle(event: UserRegistered, envelope: Envelope) -> None:
        started.set()
        await release.wait()
        finished.append(envelope.id)

    names = await start(broker, subscription, amqp_cleanup)
    envelope = await broker.publish(make_event(), correlation_id=None)
    await asyncio.wait_for(started.wait(), TIMEOUT)

    stopping = asyncio.create_task(broker.stop_consuming(grace_seconds=TIMEOUT))

    async def consumer_cancelled() -> bool:
        return (await queue_state(amqp, names.main))[1] == 0

    await eventually(consumer_cancelled, what="the consumer to be cancelled")
    assert not stopping.done(), "stop_consuming returned while a handler was running"
    release.set()
    await asyncio.wait_for(stopping, TIMEOUT)

    assert finished == [envelope.id]
    # The consuming channel is closed now: had the message not been acked, it
    # would be ready again.
    assert await ready(amqp, names.main) == 0
    assert await ready(amqp, names.dead_letter) == 0

    # A new consumer gets only what is published next, not the original again.
    seen: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    again = Subscription(name=subscription.name)

    @again.on(UserRegistered)
    async def record(event: UserRegistered, envelope: Envelope) -> None:
        await seen.put(envelope.id)

    async with connected_broker(settings, SERVICE) as other:
        await start(other, again, amqp_cleanup)
        sentinel = await other.publish(make_event(), correlation_id=None)
        assert await asyncio.wait_for(seen.get(), TIMEOUT) == sentinel.id
        await other.stop_consuming(grace_seconds=TIMEOUT)
    assert seen.empty()


async def test_stop_consuming_cancels_handler_past_grace_and_message_is_redelivered(
    broker: Broker,
    settings: BrokerSettings,
    subscription: Subscription,
    amqp: AbstractConnection,
    amqp_cleanup: list[str],
) -> None:
    started = asyncio.Event()
    never = asyncio.Event()
    cancelled: list[uuid.UUID] = []

    @subscription.on(UserRegistered)
    async def hang(event: UserRegistered, envelope: Envelope) -> None:
        started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(envelope.id)
            raise

    names = await start(broker, subscription, amqp_cleanup)
    envelope = await broker.publish(make_event(), correlation_id=None)
    await asyncio.wait_for(started.wait(), TIMEOUT)

    await asyncio.wait_for(broker.stop_consuming(grace_seconds=0.1), TIMEOUT)

    assert cancelled == [envelope.id]
    assert await ready(amqp, names.main) == 1

    seen: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    again = Subscription(name=subscription.name)

    @again.on(UserRegistered)
    async def record(event: UserRegistered, envelope: Envelope) -> None:
        await seen.put(envelope.id)

    async with connected_broker(settings, SERVICE) as other:
        await start(other, again, amqp_cleanup)
        assert await asyncio.wait_for(seen.get(), TIMEOUT) == envelope.id
        await other.stop_consuming(grace_seconds=TIMEOUT)
    assert await ready(amqp, names.main) == 0


# -- losing the broker -----------------------------------------------------------


class TcpProxy:
    """A real TCP hop between a Broker and RabbitMQ, so a test can cut the network
    (and restore it) without touching the shared RabbitMQ server."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._blocked = False
        #: Set when a connection attempt is dropped while the network is cut.
        self.refused = asyncio.Event()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Drop the open connections and every new one until `restore()`."""
        self._blocked = True
        self.refused.clear()
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def restore(self) -> None:
        self._blocked = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._blocked:
            writer.close()
            self.refused.set()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def proxy(stores: StoreEndpoints) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(stores.amqp_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.start()
    yield proxy
    await proxy.stop()


def via(proxy: TcpProxy, settings: BrokerSettings) -> BrokerSettings:
    """The settings with the broker reached through the proxy, reconnecting quickly."""
    parts = urlsplit(settings.amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", "reconnect_interval=0.1", ""))
    return settings.model_copy(update={"amqp_url": url})


async def lose_broker(proxy: TcpProxy) -> None:
    """Cut the network and wait until the client has noticed and tried to reconnect."""
    proxy.cut()
    await asyncio.wait_for(proxy.refused.wait(), TIMEOUT)


async def test_is_connected_is_false_while_the_broker_is_unreachable(
    settings: BrokerSettings, proxy: TcpProxy
) -> None:
    broker = Broker(via(proxy, settings), SERVICE)
    await broker.connect()
    try:
        assert broker.is_connected
        await lose_broker(proxy)
        # `is_connected` is the broker's readiness check (shared/lifecycle.py): a
        # client busy reconnecting is not connected.
        assert not broker.is_connected

        proxy.restore()

        async def connected() -> bool:
            return broker.is_connected

        await eventually(connected, what="is_connected after reconnecting")
    finally:
        proxy.restore()
        await asyncio.wait_for(broker.close(), TIMEOUT)


async def test_close_returns_promptly_while_the_broker_is_unreachable(
    settings: BrokerSettings,
    subscription: Subscription,
    proxy: TcpProxy,
    amqp_cleanup: list[str],
) -> None:
    @subscription.on(UserRegistered)
    async def handle(event: UserRegistered, envelope: Envelope) -> None:
        pass

    broker = Broker(via(proxy, settings), SERVICE)
    await broker.connect()
    await start(broker, subscription, amqp_cleanup)
    await lose_broker(proxy)

    # A service told to stop while RabbitMQ is down must still stop.
    closing = asyncio.create_task(broker.close())
    try:
        done, _ = await asyncio.wait({closing}, timeout=3)
        assert closing in done, "Broker.close() hangs while the broker is unreachable"
    finally:
        # Let the broker come back so that a hanging close() can finish.
        proxy.restore()
        await asyncio.wait_for(closing, TIMEOUT)
