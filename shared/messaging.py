"""RabbitMQ with aio-pika: one durable topic exchange, confirmed publishing, safe consuming.

Topology for a subscription named `users` of service `catalog` with prefix `kino`:

    kino.events (topic) --[user.registered]--> kino.catalog.users
    kino.catalog.users.retry  (TTL = retry delay, dead-letters back to the main queue)
    kino.catalog.users.dlq    (where messages end when retrying cannot help)

A message is acknowledged only after its handler returned, i.e. after its effect is
durable. A handler that raises is retried with a delay (the message is re-published
to the retry queue with its attempt count, confirmed, then acked) until the attempt
budget is spent; then it goes to the DLQ. A message that fails schema validation, or
a handler raising `PermanentFailure`, goes straight to the DLQ. A consumer killed
mid-handler leaves its message unacked, so the broker redelivers it: handlers must
be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from shared.config import BrokerSettings
from shared.events import EVENT_TYPES, Envelope, Event

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[E, Envelope], Awaitable[None]]

ATTEMPT_HEADER = "x-kino-attempt"
SHUTDOWN_STEP_SECONDS = 5.0
ERROR_HEADER = "x-kino-error"
JSON = "application/json"


class PermanentFailure(Exception):
    """Raised by a handler when retrying the message cannot succeed."""


@dataclass
class _Route:
    model: type[Event]
    handler: Handler[Any]


@dataclass(frozen=True)
class ForeignSource:
    """Messages another system publishes in its own format, on its own exchange
    (MinIO's bucket notifications). `translate` turns a body into an envelope of
    one of our events, or raises `ValueError` (then the message is dead-lettered)."""

    exchange: str
    exchange_type: aio_pika.ExchangeType
    routing_key: str
    translate: Callable[[bytes], Envelope]


@dataclass
class Subscription:
    """The events one queue of a service consumes, and the handler of each.

    Registering only records the handler: it stays a plain coroutine function that a
    test can call directly.
    """

    name: str
    prefetch: int | None = None
    #: Consume another system's messages instead of our exchange's events.
    source: ForeignSource | None = None
    routes: dict[str, _Route] = field(default_factory=dict)

    def decode(self, body: bytes) -> Envelope:
        if self.source is not None:
            return self.source.translate(body)
        return Envelope.model_validate_json(body)

    @property
    def routing_keys(self) -> list[str]:
        return sorted(self.routes)

    def on(self, model: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        def register(handler: Handler[E]) -> Handler[E]:
            self.routes[model.event_type] = _Route(model, handler)
            return handler

        return register


@dataclass(frozen=True)
class QueueNames:
    main: str
    retry: str
    dead_letter: str

    @classmethod
    def of(cls, prefix: str, service: str, subscription: str) -> QueueNames:
        main = f"{prefix}.{service}.{subscription}"
        return cls(main=main, retry=f"{main}.retry", dead_letter=f"{main}.dlq")


class Broker:
    """A service's connection to the broker: publishing and consuming."""

    def __init__(
        self, settings: BrokerSettings, service: str, registry: CollectorRegistry | None = None
    ) -> None:
        self._settings = settings
        self._service = service
        self._handled = Counter(
            "events_handled",
            "Messages consumed, by queue, event type and outcome (acked, retried, dead_lettered)",
            ["queue", "event_type", "outcome"],
            registry=registry,
        )
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[tuple[AbstractChannel, AbstractQueue, str]] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._settings.amqp_url, client_properties={"connection_name": self._service}
        )
        self._publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self._publish_channel.declare_exchange(
            self._settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def close(self) -> None:
        await self.stop_consuming()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @property
    def is_connected(self) -> bool:
        # A robust connection is not "closed" while it reconnects; `connected` tells.
        return self._connection is not None and self._connection.connected.is_set()

    # -- publishing ------------------------------------------------------------

    async def publish(self, event: Event, *, correlation_id: str | None = None) -> Envelope:
        envelope = Envelope.wrap(event, correlation_id=correlation_id)
        await self.publish_envelope(envelope)
        return envelope

    async def publish_envelope(self, envelope: Envelope) -> None:
        """Publish persistently and wait for the broker's confirm.

        Not `mandatory`: an event nobody subscribes to yet is not an error.
        """
        _ensure_known(envelope)
        await self._exchange_or_raise().publish(
            _message(envelope),
            routing_key=envelope.type,
            mandatory=False,
        )

    # -- consuming -------------------------------------------------------------

    def queue_names(self, subscription: Subscription) -> QueueNames:
        return QueueNames.of(self._settings.amqp_queue_prefix, self._service, subscription.name)

    async def declare(self, subscription: Subscription) -> QueueNames:
        """Declare the subscription's queue, retry queue and DLQ (idempotent)."""
        names = self.queue_names(subscription)
        channel = self._publish_channel_or_raise()
        await channel.declare_queue(names.dead_letter, durable=True)
        await channel.declare_queue(
            names.retry,
            durable=True,
            arguments={
                "x-message-ttl": int(self._settings.amqp_retry_delay_seconds * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": names.main,
            },
        )
        queue = await channel.declare_queue(
            names.main,
            durable=True,
            arguments={
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": names.dead_letter,
            },
        )
        if subscription.source is not None:
            foreign = await channel.declare_exchange(
                subscription.source.exchange, subscription.source.exchange_type, durable=True
            )
            await queue.bind(foreign, routing_key=subscription.source.routing_key)
            return names
        for routing_key in subscription.routing_keys:
            await queue.bind(self._exchange_or_raise(), routing_key=routing_key)
        return names

    async def consume(self, subscription: Subscription) -> QueueNames:
        names = await self.declare(subscription)
        connection = self._connection_or_raise()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=subscription.prefetch or self._settings.amqp_prefetch)
        queue = await channel.get_queue(names.main, ensure=False)

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            try:
                await self._deliver(subscription, names, message)
            finally:
                if task is not None:
                    self._in_flight.discard(task)

        tag = await queue.consume(on_message)
        self._consumers.append((channel, queue, tag))
        log.info("consuming", queue=names.main, events=sorted(subscription.routes))
        return names

    async def stop_consuming(self, grace_seconds: float = 0.0) -> None:
        """Take no new messages; give in-flight handlers `grace_seconds` to finish.

        Handlers still running after that are cancelled; their messages stay
        unacked and the broker redelivers them to another consumer.
        """
        for _, queue, tag in self._consumers:
            await self._bounded(queue.cancel(tag))
        if self._in_flight and grace_seconds > 0:
            await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
        for task in set(self._in_flight):
            task.cancel()
        for channel, _, _ in self._consumers:
            await self._bounded(channel.close())
        self._consumers.clear()

    async def _bounded(self, operation: Awaitable[object]) -> None:
        """Run a shutdown step; skip it when the broker is gone. On a robust connection
        such steps would otherwise wait for the broker to come back, hanging shutdown
        (and the broker requeues our unacked messages when the connection drops anyway)."""
        if not self.is_connected:
            if asyncio.iscoroutine(operation):
                operation.close()
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(operation, SHUTDOWN_STEP_SECONDS)

    async def _deliver(
        self, subscription: Subscription, names: QueueNames, message: AbstractIncomingMessage
    ) -> None:
        attempt = _attempt(message)
        try:
            envelope = subscription.decode(message.body)
            route = subscription.routes[envelope.type]
            event = route.model.model_validate(envelope.data)
        except (ValidationError, KeyError, ValueError) as exc:
            log.warning("message failed schema validation", queue=names.main, error=str(exc))
            await self._dead_letter(names, message, f"schema: {exc}")
            self._handled.labels(names.main, "invalid", "dead_lettered").inc()
            return
        with structlog.contextvars.bound_contextvars(
            request_id=envelope.correlation_id, event_type=envelope.type, event_id=str(envelope.id)
        ):
            try:
                await route.handler(event, envelope)
            except PermanentFailure as exc:
                log.warning("handler refused message", queue=names.main, error=str(exc))
                await self._dead_letter(names, message, f"permanent: {exc}")
                outcome = "dead_lettered"
            except Exception as exc:
                outcome = await self._retry_or_dead_letter(names, message, attempt, exc)
            else:
                await message.ack()
                outcome = "acked"
            self._handled.labels(names.main, envelope.type, outcome).inc()

    async def _retry_or_dead_letter(
        self, names: QueueNames, message: AbstractIncomingMessage, attempt: int, exc: Exception
    ) -> str:
        reason = f"{type(exc).__name__}: {exc}"
        if attempt >= self._settings.amqp_max_attempts:
            log.error(
                "handler failed, attempts spent",
                queue=names.main,
                attempt=attempt,
                error=reason,
                exc_info=exc,
            )
            await self._dead_letter(names, message, f"attempts spent: {reason}")
            return "dead_lettered"
        log.warning("handler failed, will retry", queue=names.main, attempt=attempt, error=reason)
        await self._forward(message, names.retry, {ATTEMPT_HEADER: attempt + 1})
        await message.ack()
        return "retried"

    async def _dead_letter(
        self, names: QueueNames, message: AbstractIncomingMessage, reason: str
    ) -> None:
        await self._forward(message, names.dead_letter, {ERROR_HEADER: reason[:1000]})
        await message.ack()

    async def _forward(
        self, message: AbstractIncomingMessage, queue: str, extra_headers: dict[str, Any]
    ) -> None:
        """Copy a message into one of our queues, confirmed, before the original is acked."""
        headers = {**(message.headers or {}), **extra_headers}
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type or JSON,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
        )
        await self._publish_channel_or_raise().default_exchange.publish(
            copy, routing_key=queue, mandatory=True
        )

    # -- helpers ---------------------------------------------------------------

    def _connection_or_raise(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._connection

    def _publish_channel_or_raise(self) -> AbstractChannel:
        if self._publish_channel is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._publish_channel

    def _exchange_or_raise(self) -> AbstractExchange:
        if self._exchange is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._exchange


def _ensure_known(envelope: Envelope) -> None:
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        raise ValueError(f"unknown event type {envelope.type!r}")
    model.model_validate(envelope.data)


def _message(envelope: Envelope) -> aio_pika.Message:
    return aio_pika.Message(
        envelope.model_dump_json().encode(),
        content_type=JSON,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(envelope.id),
        correlation_id=envelope.correlation_id,
        type=envelope.type,
        timestamp=envelope.occurred_at,
    )


def _attempt(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return value if isinstance(value, int) and value >= 1 else 1


@contextlib.asynccontextmanager
async def connected_broker(
    settings: BrokerSettings, service: str, registry: CollectorRegistry | None = None
) -> AsyncIterator[Broker]:
    broker = Broker(settings, service, registry)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()
