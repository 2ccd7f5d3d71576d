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
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
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
from tests.shared.broker_helpers import TIMEOUT, BrokerSetup, RabbitView, make_event

SERVICE = "testsvc"


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def broker_setup(namespace: str) -> BrokerSetup:
    return BrokerSetup(service=SERVICE, prefix=namespace, prefetch=4)


@pytest.fixture
def subscription() -> Subscription:
    """A subscription with a unique name; each test routes its own handler."""
    return Subscription(name=f"sub-{uuid.uuid4().hex[:6]}")


# -- helpers -------------------------------------------------------------------


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, within: float = TIMEOUT, what: str
) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def assert_sentinel_comes_first(broker: Broker, queue: AbstractQueue) -> None:
    """Publish a sentinel: messages of one channel stay in order, so anything published
    before it (that should not have gone out) would be in front of it."""
    sentinel = await broker.publish(make_event(), correlation_id=None)
    first = await queue.get(no_ack=True, fail=False)
    assert first is not None
    assert Envelope.model_validate_json(first.body).id == sentinel.id


def recording_handler(
    subscription: Subscription, failure: Callable[[int], Exception | None] | None = None
) -> list[uuid.UUID]:
    """Route `user.registered` to a handler that records the envelope id of every call,
    then raises `failure(number of calls so far)` unless that is None.

    Returns the recorded ids.
    """
    calls: list[uuid.UUID] = []

    @subscription.on(UserRegistered)
    async def handle(event: UserRegistered, envelope: Envelope) -> None:
        calls.append(envelope.id)
        if failure is not None and (error := failure(len(calls))) is not None:
            raise error

    return calls


@dataclass
class HeldHandler:
    """A handler that holds every event until `release` is set, recording the ids it
    finished and those it was cancelled on."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    finished: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)

    def route(self, subscription: Subscription) -> None:
        @subscription.on(UserRegistered)
        async def hold(event: UserRegistered, envelope: Envelope) -> None:
            self.started.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append(envelope.id)
                raise
            self.finished.append(envelope.id)


async def start_and_publish(
    rabbit: RabbitView,
    broker: Broker,
    subscription: Subscription,
    *,
    correlation_id: str | None = None,
) -> tuple[QueueNames, Envelope]:
    """Start consuming, then publish one new event; its queues and envelope."""
    names = await rabbit.start(broker, subscription)
    envelope = await broker.publish(make_event(), correlation_id=correlation_id)
    return names, envelope


async def hold_one_message(
    rabbit: RabbitView, broker: Broker, subscription: Subscription
) -> tuple[QueueNames, Envelope, HeldHandler]:
    """Publish one event and wait until a `HeldHandler` of `broker` is holding it."""
    held = HeldHandler()
    held.route(subscription)
    names, envelope = await start_and_publish(rabbit, broker, subscription)
    await asyncio.wait_for(held.started.wait(), TIMEOUT)
    return names, envelope, held


async def dead_letter_of(
    rabbit: RabbitView, broker: Broker, names: QueueNames
) -> AbstractIncomingMessage:
    """Take the message that arrives in the dead-letter queue, then stop consuming."""
    dead = await rabbit.take_one(names.dead_letter)
    await broker.stop_consuming(grace_seconds=TIMEOUT)
    return dead


@asynccontextmanager
async def recording_consumer(
    rabbit: RabbitView, subscription_name: str
) -> AsyncIterator[tuple[Broker, asyncio.Queue[uuid.UUID]]]:
    """A new consumer of the subscription, on a broker connection of its own.

    Yields that broker and the queue it puts the id of every event it handles into;
    it stops consuming (letting its handlers finish) when the block ends.
    """
    seen: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    again = Subscription(name=subscription_name)

    @again.on(UserRegistered)
    async def record(event: UserRegistered, envelope: Envelope) -> None:
        await seen.put(envelope.id)

    async with connected_broker(rabbit.settings, SERVICE) as other:
        await rabbit.start(other, again)
        yield other, seen
        await other.stop_consuming(grace_seconds=TIMEOUT)


# -- publishing ----------------------------------------------------------------


async def test_publish_returns_after_confirm_and_delivers_the_envelope(
    broker: Broker, rabbit: RabbitView
) -> None:
    queue = await rabbit.probe_queue()
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
    broker: Broker, rabbit: RabbitView
) -> None:
    queue = await rabbit.probe_queue()
    invalid = Envelope(type=UserRegistered.event_type, version=1, data={"user_id": "u-1"})

    with pytest.raises(ValidationError, match="email"):
        await broker.publish_envelope(invalid)

    await assert_sentinel_comes_first(broker, queue)
    assert await queue.get(no_ack=True, fail=False) is None


async def test_publish_envelope_of_unknown_type_raises_before_sending(
    broker: Broker, rabbit: RabbitView
) -> None:
    everything = await rabbit.probe_queue(routing_key="#")
    unknown = Envelope(type="user.teleported", version=1, data={"user_id": "u-1"})

    with pytest.raises(ValueError, match="unknown event type"):
        await broker.publish_envelope(unknown)

    await assert_sentinel_comes_first(broker, everything)


# -- consuming -----------------------------------------------------------------


async def test_handler_error_is_retried_and_succeeds_on_second_delivery(
    broker: Broker, subscription: Subscription, rabbit: RabbitView
) -> None:
    succeeded = asyncio.Event()

    def fail_the_first_attempt(attempt: int) -> Exception | None:
        if attempt == 1:
            return RuntimeError("transient hiccup")
        succeeded.set()
        return None

    calls = recording_handler(subscription, fail_the_first_attempt)
    names, envelope = await start_and_publish(
        rabbit, broker, subscription, correlation_id="req-retry"
    )

    await asyncio.wait_for(succeeded.wait(), TIMEOUT)
    # Waits for the handler's ack, then closes the channel: an unacked message
    # would be back in the main queue.
    await broker.stop_consuming(grace_seconds=TIMEOUT)

    assert calls == [envelope.id, envelope.id]
    await rabbit.assert_none_ready(names.main, names.retry, names.dead_letter)


async def test_handler_failing_every_attempt_ends_in_dead_letter_queue(
    broker: Broker, subscription: Subscription, rabbit: RabbitView
) -> None:
    settings = rabbit.settings
    calls = recording_handler(subscription, lambda n: RuntimeError(f"still broken #{n}"))
    names, envelope = await start_and_publish(
        rabbit, broker, subscription, correlation_id="req-dlq"
    )

    dead = await dead_letter_of(rabbit, broker, names)

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
    # We took the only one from the dead-letter queue.
    await rabbit.assert_none_ready(names.main, names.retry, names.dead_letter)


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
    body: bytes, broker: Broker, subscription: Subscription, rabbit: RabbitView
) -> None:
    calls = recording_handler(subscription)
    names = await rabbit.start(broker, subscription)
    await rabbit.publish_raw(body, routing_key=UserRegistered.event_type)

    dead = await dead_letter_of(rabbit, broker, names)

    assert calls == []
    assert dead.body == body
    headers = dict(dead.headers or {})
    assert str(headers[ERROR_HEADER]).startswith("schema:")
    assert ATTEMPT_HEADER not in headers  # never retried
    await rabbit.assert_none_ready(names.main, names.retry)


async def test_permanent_failure_goes_to_dead_letter_queue_at_first_attempt(
    broker: Broker, subscription: Subscription, rabbit: RabbitView
) -> None:
    calls = recording_handler(subscription, lambda _: PermanentFailure("cannot ever work"))
    names, envelope = await start_and_publish(rabbit, broker, subscription)

    dead = await dead_letter_of(rabbit, broker, names)

    assert calls == [envelope.id]
    assert Envelope.model_validate_json(dead.body).id == envelope.id
    headers = dict(dead.headers or {})
    assert headers[ERROR_HEADER] == "permanent: cannot ever work"
    assert ATTEMPT_HEADER not in headers
    await rabbit.assert_none_ready(names.main, names.retry)


async def test_message_of_consumer_dying_mid_handler_is_redelivered_to_another(
    subscription: Subscription, rabbit: RabbitView
) -> None:
    first = Broker(rabbit.settings, SERVICE)
    await first.connect()
    names, envelope, _ = await hold_one_message(rabbit, first, subscription)

    # The process dies: its connection goes away while the handler awaits. A dead
    # process cleans nothing up, so `first.close()` is not called.
    connection = first._connection
    assert connection is not None
    await connection.close()
    assert not first.is_connected

    async with recording_consumer(rabbit, subscription.name) as (_, handled):
        redelivered = await asyncio.wait_for(handled.get(), TIMEOUT)

    assert redelivered == envelope.id
    assert handled.empty()
    await rabbit.assert_none_ready(names.main, names.dead_letter)


async def test_stop_consuming_lets_in_flight_handler_finish_and_ack(
    broker: Broker, subscription: Subscription, rabbit: RabbitView
) -> None:
    names, envelope, held = await hold_one_message(rabbit, broker, subscription)

    stopping = asyncio.create_task(broker.stop_consuming(grace_seconds=TIMEOUT))

    async def consumer_cancelled() -> bool:
        return (await rabbit.queue_state(names.main))[1] == 0

    await eventually(consumer_cancelled, what="the consumer to be cancelled")
    assert not stopping.done(), "stop_consuming returned while a handler was running"
    held.release.set()
    await asyncio.wait_for(stopping, TIMEOUT)

    assert held.finished == [envelope.id]
    # The consuming channel is closed now: had the message not been acked, it
    # would be ready again.
    await rabbit.assert_none_ready(names.main, names.dead_letter)

    # A new consumer gets only what is published next, not the original again.
    async with recording_consumer(rabbit, subscription.name) as (other, seen):
        sentinel = await other.publish(make_event(), correlation_id=None)
        assert await asyncio.wait_for(seen.get(), TIMEOUT) == sentinel.id
    assert seen.empty()


async def test_stop_consuming_cancels_handler_past_grace_and_message_is_redelivered(
    broker: Broker, subscription: Subscription, rabbit: RabbitView
) -> None:
    names, envelope, held = await hold_one_message(rabbit, broker, subscription)

    await asyncio.wait_for(broker.stop_consuming(grace_seconds=0.1), TIMEOUT)

    assert held.cancelled == [envelope.id]
    assert await rabbit.ready(names.main) == 1

    async with recording_consumer(rabbit, subscription.name) as (_, seen):
        assert await asyncio.wait_for(seen.get(), TIMEOUT) == envelope.id
    assert await rabbit.ready(names.main) == 0


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
    subscription: Subscription, proxy: TcpProxy, rabbit: RabbitView
) -> None:
    @subscription.on(UserRegistered)
    async def handle(event: UserRegistered, envelope: Envelope) -> None:
        pass

    broker = Broker(via(proxy, rabbit.settings), SERVICE)
    await broker.connect()
    await rabbit.start(broker, subscription)
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
