"""The broker tests of `shared` (messaging, outbox): how each module sets its broker up,
and the test's own look at RabbitMQ beside that broker.

`tests/shared/conftest.py` builds the `settings`, `broker` and `rabbit` fixtures from
the `broker_setup` fixture each of those test modules defines.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

from shared.config import BrokerSettings
from shared.events import UserRegistered
from shared.messaging import Broker, QueueNames, Subscription

#: How long a test waits for anything the broker does.
TIMEOUT = 10.0


def make_event() -> UserRegistered:
    """A `user.registered` event of a new user."""
    suffix = uuid.uuid4().hex[:8]
    return UserRegistered(user_id=f"user-{suffix}", email=f"{suffix}@example.org")


@dataclass(frozen=True)
class BrokerSetup:
    """What the test module's broker is: the `service` it runs as, the `prefix` of its
    exchange and queues, its `prefetch`."""

    #: The service name the test's broker publishes and consumes as.
    service: str
    #: Exchange `kino.<prefix>.<tag>` and queue prefix `<prefix>.<tag>`, `<tag>` new per test.
    prefix: str
    #: `amqp_prefetch`; None leaves the settings' default.
    prefetch: int | None = None


@dataclass(frozen=True)
class RabbitView:
    """The test's own look at RabbitMQ: a plain aio-pika connection, the test's broker
    settings, and the session's list of queues to delete at the end (`amqp_cleanup`)."""

    amqp: AbstractConnection
    settings: BrokerSettings
    cleanup: list[str]

    async def start(self, broker: Broker, subscription: Subscription) -> QueueNames:
        """`broker` consumes `subscription`; its three queues are deleted at the end."""
        names = broker.queue_names(subscription)
        self.cleanup.extend([names.main, names.retry, names.dead_letter])
        return await broker.consume(subscription)

    async def probe_queue(self, routing_key: str = UserRegistered.event_type) -> AbstractQueue:
        """A queue of the test's own, bound to `routing_key` on the test's exchange."""
        name = f"{self.settings.amqp_queue_prefix}.probe.{uuid.uuid4().hex[:6]}"
        self.cleanup.append(name)
        channel = await self.amqp.channel()
        exchange = await channel.declare_exchange(
            self.settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(name, durable=True)
        await queue.bind(exchange, routing_key=routing_key)
        return queue

    async def queue_state(self, name: str) -> tuple[int, int]:
        """(ready messages, consumers) of a queue; unacked messages are not counted."""
        channel = await self.amqp.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
            result = queue.declaration_result
            return result.message_count or 0, result.consumer_count or 0
        finally:
            await channel.close()

    async def ready(self, name: str) -> int:
        return (await self.queue_state(name))[0]

    async def assert_none_ready(self, *names: str) -> None:
        """No message is ready in any of these queues."""
        for name in names:
            assert await self.ready(name) == 0, f"a message is ready in {name}"

    async def take_one(self, name: str) -> AbstractIncomingMessage:
        """Wait for a message in a queue and take it out (polling with a deadline)."""
        channel = await self.amqp.channel()
        queue = await channel.get_queue(name, ensure=False)
        deadline = time.monotonic() + TIMEOUT
        while (message := await queue.get(no_ack=True, fail=False)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no message arrived in {name}")
            await asyncio.sleep(0.02)
        await channel.close()
        return message

    async def publish_raw(self, body: bytes, routing_key: str) -> None:
        """Publish `body` as it is to the test's exchange, past any `Broker` check."""
        channel = await self.amqp.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(self.settings.amqp_exchange, ensure=False)
        await exchange.publish(
            aio_pika.Message(body, content_type="application/json"), routing_key=routing_key
        )
        await channel.close()
