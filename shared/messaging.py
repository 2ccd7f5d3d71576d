"""RabbitMQ with aio-pika: one durable topic exchange, confirmed publishing, safe consuming.

Topology for a subscription named `users` of service `catalog` with prefix `kino`:

    kino.events (topic) --[user.registered]--> kino.catalog.users
    kino.catalog.users.retry  (TTL = retry delay, dead-letters back to the main queue)
    kino.catalog.users.dlq    (where messages end when retrying cannot help)

A job queue (`Subscription.job`, the transcoder's) is a quorum queue with a delivery
limit instead: a message whose consumer died mid-job (no ack) is redelivered, counted
by the broker, and after `JobQueue.delivery_limit` such deaths it is given up.

A message is acknowledged only after its handler returned, i.e. after its effect is
durable. A handler that raises is retried with a delay (the message is re-published
to the retry queue with its attempt count, confirmed, then acked) until the attempt
budget is spent; then it goes to the DLQ. A message that fails schema validation, or
a handler raising `PermanentFailure`, goes straight to the DLQ. A job's message is
reported to `JobQueue.give_up` before it goes to the DLQ, whatever the reason, so the
job's owner learns it failed. A consumer killed mid-handler leaves its message
unacked, so the broker redelivers it: handlers must be idempotent.

After a lost connection or channel, the publisher's channel and every consumer are
opened again by the broker itself (`Broker._restore`); `Broker.is_consuming` (the
readiness check) tells whether every consumer is back.

Tracing (`shared/tracing.py`): publishing is a PRODUCER span `publish <type>` whose
context goes into the message's `traceparent` header; consuming runs the handler in a
CONSUMER span `process <type>` continuing that context. Retries and dead letters are
copies with the same headers, so every delivery of an event is a child of its publish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from shared import tracing
from shared.config import BrokerSettings
from shared.events import EVENT_TYPES, Envelope, Event

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[[E, Envelope], Awaitable[None]]

ATTEMPT_HEADER = "x-kino-attempt"
#: Set by quorum queues on a redelivered message: the deliveries that ended without an
#: ack. RabbitMQ 4 no longer counts a consumer that went away there, but in
#: `x-acquired-count`; both are read (only 3.10 is tested here).
DELIVERY_COUNT_HEADER = "x-delivery-count"
ACQUIRED_COUNT_HEADER = "x-acquired-count"
SHUTDOWN_STEP_SECONDS = 5.0
#: Delays between attempts to open the channels again after a reconnect.
RESTORE_FIRST_DELAY_SECONDS = 0.5
RESTORE_MAX_DELAY_SECONDS = 10.0
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


@dataclass(frozen=True)
class GivenUp:
    """Why a job's message is given up (then dead-lettered)."""

    #: For logs and the DLQ's `x-kino-error` header.
    reason: str
    #: The handler's last error when the retry budget is spent.
    error: Exception | None = None
    #: The consumer died (no ack) on every delivery the limit allows.
    worker_died: bool = False


#: Reports a job given up: its envelope (None when the message is not even an envelope).
GiveUp = Callable[[Envelope | None, GivenUp], Awaitable[None]]


@dataclass(frozen=True)
class JobQueue:
    """Makes a subscription's queue a job queue: quorum, with a delivery limit."""

    #: Deliveries a job may die on (consumer gone without an ack) before it is given up.
    delivery_limit: int
    give_up: GiveUp
    #: The names of the queues this one replaces; what they (and their retry queues and
    #: DLQs) still hold is moved over at start, then they are deleted.
    legacy_names: tuple[str, ...] = ()


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
    job: JobQueue | None = None
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


@dataclass
class _Consumer:
    """A subscription being consumed, and its current channel (replaced on restore)."""

    subscription: Subscription
    names: QueueNames
    channel: AbstractChannel | None = None
    queue: AbstractQueue | None = None
    tag: str | None = None


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
        self,
        settings: BrokerSettings,
        service: str,
        registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """`tracer_provider`: the service's (`shared.tracing.TRACER_PROVIDER`); without
        one, the API's global provider (the process's, see `tracing_context`)."""
        self._settings = settings
        self._service = service
        self._tracer = trace.get_tracer(tracing.SCOPE, tracer_provider=tracer_provider)
        self._handled = Counter(
            "events_handled",
            "Messages consumed, by queue, event type and outcome (acked, retried, dead_lettered)",
            ["queue", "event_type", "outcome"],
            registry=registry,
        )
        self._queue_messages = Gauge(
            "broker_queue_messages",
            "Ready messages in the queues this service consumes and their DLQs",
            ["queue"],
            registry=registry,
        )
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[_Consumer] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._restoring: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def connect(self) -> None:
        """Connect; the connection reconnects by itself, and the channels (ours, not
        the library's robust ones, whose restore proved unreliable after a broker
        restart) are opened again by `_restore` after every reconnect."""
        self._connection = await aio_pika.connect_robust(
            self._settings.amqp_url, client_properties={"connection_name": self._service}
        )
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        await self._open_publisher()

    async def close(self) -> None:
        await self.stop_consuming()
        if self._restoring is not None:
            self._restoring.cancel()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @property
    def is_connected(self) -> bool:
        # A robust connection is not "closed" while it reconnects; `connected` tells.
        return self._connection is not None and self._connection.connected.is_set()

    async def is_consuming(self) -> bool:
        """Connected, publishing, and every consumer started is on the broker now."""
        if not self.is_connected or _is_closed(self._publish_channel):
            return False
        for consumer in self._consumers:
            if consumer.channel is None or consumer.channel.is_closed:
                return False
            try:
                underlay = await consumer.channel.get_underlay_channel()
            except aiormq.exceptions.ChannelInvalidStateError:
                return False
            if not isinstance(underlay, aiormq.Channel) or consumer.tag not in underlay.consumers:
                return False
        return True

    async def _channel(self, *, confirms: bool) -> AbstractChannel:
        """A plain channel: when it closes, `_restore` opens a new one."""
        channel = aio_pika.Channel(
            self._connection_or_raise(), publisher_confirms=confirms, on_return_raises=confirms
        )
        await channel
        channel.close_callbacks.add(self._on_channel_closed)
        return channel

    async def _open_publisher(self) -> None:
        channel = await self._channel(confirms=True)
        self._exchange = await channel.declare_exchange(
            self._settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._publish_channel = channel

    def _on_reconnect(self, *_: object) -> None:
        self._schedule_restore()

    def _on_channel_closed(self, *_: object) -> None:
        self._schedule_restore()

    def _schedule_restore(self) -> None:
        if self._stopping or (self._restoring is not None and not self._restoring.done()):
            return
        self._restoring = asyncio.create_task(self._restore(), name="broker-restore")

    async def _restore(self) -> None:
        """Open again whatever channel is closed (the publisher's, each consumer's), once
        the connection is up; retried with a growing delay until all are back."""
        delay = RESTORE_FIRST_DELAY_SECONDS
        while not self._stopping and self._connection is not None:
            if self._connection.is_closed:
                return  # closed for good: nothing to restore
            if not self.is_connected:
                await asyncio.sleep(delay)  # the connection is reconnecting
                continue
            try:
                if _is_closed(self._publish_channel):
                    await self._open_publisher()
                for consumer in self._consumers:
                    if _is_closed(consumer.channel):
                        await self._start(consumer)
            except Exception as exc:
                log.warning("restoring channels failed; will retry", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTORE_MAX_DELAY_SECONDS)
            else:
                log.info("channels restored", consumers=len(self._consumers))
                return

    async def measure_queues(self) -> None:
        """Read the depth of every consumed queue and its DLQ into `broker_queue_messages`."""
        channel = aio_pika.Channel(self._connection_or_raise(), publisher_confirms=False)
        async with channel:
            for consumer in self._consumers:
                for name in (consumer.names.main, consumer.names.dead_letter):
                    queue = await channel.declare_queue(name, passive=True)
                    depth = queue.declaration_result.message_count or 0
                    self._queue_messages.labels(name).set(depth)

    # -- publishing ------------------------------------------------------------

    async def publish(self, event: Event, *, correlation_id: str | None = None) -> Envelope:
        envelope = Envelope.wrap(event, correlation_id=correlation_id)
        await self.publish_envelope(envelope)
        return envelope

    async def publish_envelope(self, envelope: Envelope, *, context: Context | None = None) -> None:
        """Publish persistently and wait for the broker's confirm.

        Not `mandatory`: an event nobody subscribes to yet is not an error. The PRODUCER
        span is a child of `context` (the outbox's record of where the event was made),
        else of the current span.
        """
        _ensure_known(envelope)
        with self._tracer.start_as_current_span(
            f"publish {envelope.type}",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": self._settings.amqp_exchange,
                "messaging.rabbitmq.destination.routing_key": envelope.type,
                "messaging.message.id": str(envelope.id),
                "messaging.message.conversation_id": envelope.correlation_id or "",
            },
        ):
            await self._exchange_or_raise().publish(
                _message(envelope, tracing.current_trace_headers()),
                routing_key=envelope.type,
                mandatory=False,
            )

    # -- consuming -------------------------------------------------------------

    def queue_names(self, subscription: Subscription) -> QueueNames:
        return QueueNames.of(self._settings.amqp_queue_prefix, self._service, subscription.name)

    async def consume(self, subscription: Subscription) -> QueueNames:
        """Declare the subscription's queues and consume its main queue; after a lost
        connection or channel the consumer is started again (`_restore`)."""
        consumer = _Consumer(subscription, self.queue_names(subscription))
        await self._start(consumer)
        self._consumers.append(consumer)
        for legacy_name in subscription.job.legacy_names if subscription.job else ():
            legacy = QueueNames.of(self._settings.amqp_queue_prefix, self._service, legacy_name)
            await self._adopt_legacy_queues(subscription, legacy, consumer.names)
        log.info("consuming", queue=consumer.names.main, events=sorted(subscription.routes))
        return consumer.names

    async def _start(self, consumer: _Consumer) -> None:
        subscription, names = consumer.subscription, consumer.names
        channel = await self._channel(confirms=False)
        await channel.set_qos(prefetch_count=subscription.prefetch or self._settings.amqp_prefetch)
        queue = await self._declare(channel, subscription, names)

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            try:
                await self._deliver(subscription, names, message)
            finally:
                if task is not None:
                    self._in_flight.discard(task)

        consumer.tag = await queue.consume(on_message)
        consumer.queue = queue
        consumer.channel = channel

    async def stop_consuming(self, grace_seconds: float = 0.0) -> None:
        """Take no new messages; give in-flight handlers `grace_seconds` to finish.

        Handlers still running after that are cancelled; their messages stay
        unacked and the broker redelivers them to another consumer.
        """
        self._stopping = True
        for consumer in self._consumers:
            if consumer.queue is not None and consumer.tag is not None:
                await self._bounded(consumer.queue.cancel(consumer.tag))
        if self._in_flight and grace_seconds > 0:
            await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
        for task in set(self._in_flight):
            task.cancel()
        for consumer in self._consumers:
            if consumer.channel is not None:
                await self._bounded(consumer.channel.close())
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
        try:
            await self._handle(subscription, names, message)
        except Exception:
            # Retrying, dead-lettering or giving the job up failed (the broker or the
            # give-up's publish): hand the message back; a job queue counts it.
            log.exception("could not settle a message; handing it back", queue=names.main)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)

    async def _handle(
        self, subscription: Subscription, names: QueueNames, message: AbstractIncomingMessage
    ) -> None:
        """Settle one message inside a CONSUMER span continuing its publisher's trace."""
        with self._tracer.start_as_current_span(
            f"process {message.routing_key}",
            context=tracing.extract(message.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": message.exchange or "amq.default",
                "messaging.destination.subscription.name": names.main,
                "messaging.rabbitmq.destination.routing_key": message.routing_key or "",
                "messaging.message.id": message.message_id or "",
                "messaging.message.conversation_id": message.correlation_id or "",
                "kino.attempt": _attempt(message),
            },
        ) as span:
            await self._settle(subscription, names, message, span)

    async def _settle(
        self,
        subscription: Subscription,
        names: QueueNames,
        message: AbstractIncomingMessage,
        span: Span,
    ) -> None:
        attempt = _attempt(message)
        try:
            envelope = subscription.decode(message.body)
            # A retried message comes back with its queue as routing key: name the span
            # after the event.
            span.update_name(f"process {envelope.type}")
            route = subscription.routes[envelope.type]
            event = route.model.model_validate(envelope.data)
        except (ValidationError, KeyError, ValueError) as exc:
            log.warning("message failed schema validation", queue=names.main, error=str(exc))
            given_up = GivenUp(f"schema: {exc}")
            await self._dead_letter(subscription, names, message, _envelope_of(message), given_up)
            self._handled.labels(names.main, "invalid", "dead_lettered").inc()
            _span_outcome(span, "dead_lettered", exc)
            return
        with structlog.contextvars.bound_contextvars(
            request_id=envelope.correlation_id, event_type=envelope.type, event_id=str(envelope.id)
        ):
            deaths = _deaths(message)
            if subscription.job is not None and deaths >= subscription.job.delivery_limit:
                log.error("job given up: its worker died on every delivery", deaths=deaths)
                given_up = GivenUp(f"the worker died {deaths} times on this job", worker_died=True)
                await self._dead_letter(subscription, names, message, envelope, given_up)
                self._handled.labels(names.main, envelope.type, "dead_lettered").inc()
                _span_outcome(span, "dead_lettered", None)
                return
            error: Exception | None = None
            try:
                await route.handler(event, envelope)
            except PermanentFailure as exc:
                log.warning("handler refused message", queue=names.main, error=str(exc))
                given_up = GivenUp(f"permanent: {exc}", error=exc)
                await self._dead_letter(subscription, names, message, envelope, given_up)
                outcome, error = "dead_lettered", exc
            except Exception as exc:
                outcome = await self._retry_or_dead_letter(
                    subscription, names, message, envelope, attempt, exc
                )
                error = exc
            else:
                await message.ack()
                outcome = "acked"
            self._handled.labels(names.main, envelope.type, outcome).inc()
            _span_outcome(span, outcome, error)

    async def _retry_or_dead_letter(
        self,
        subscription: Subscription,
        names: QueueNames,
        message: AbstractIncomingMessage,
        envelope: Envelope,
        attempt: int,
        exc: Exception,
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
            given_up = GivenUp(f"attempts spent: {reason}", error=exc)
            await self._dead_letter(subscription, names, message, envelope, given_up)
            return "dead_lettered"
        log.warning("handler failed, will retry", queue=names.main, attempt=attempt, error=reason)
        await self._forward(message, names.retry, {ATTEMPT_HEADER: attempt + 1})
        await message.ack()
        return "retried"

    async def _dead_letter(
        self,
        subscription: Subscription,
        names: QueueNames,
        message: AbstractIncomingMessage,
        envelope: Envelope | None,
        given_up: GivenUp,
    ) -> None:
        """Report a job given up, then move its message to the DLQ."""
        if subscription.job is not None:
            await subscription.job.give_up(envelope, given_up)
        await self._forward(message, names.dead_letter, {ERROR_HEADER: given_up.reason[:1000]})
        await message.ack()

    async def _forward(
        self, message: AbstractIncomingMessage, queue: str, extra_headers: dict[str, Any]
    ) -> None:
        """Copy a message into one of our queues, confirmed, before the original is acked."""
        await self._publish_channel_or_raise().default_exchange.publish(
            _copy(message, extra_headers), routing_key=queue, mandatory=True
        )

    async def _declare(
        self, channel: AbstractChannel, subscription: Subscription, names: QueueNames
    ) -> AbstractQueue:
        """Declare the main queue, its retry queue and its DLQ, and bind it (idempotent)."""
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
        arguments: dict[str, Any] = {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": names.dead_letter,
        }
        if subscription.job is not None:
            arguments |= {
                "x-queue-type": "quorum",
                # The broker dead-letters past this itself: the backstop should giving
                # the job up fail too.
                "x-delivery-limit": subscription.job.delivery_limit,
            }
        queue = await channel.declare_queue(names.main, durable=True, arguments=arguments)
        if subscription.source is not None:
            foreign = await channel.declare_exchange(
                subscription.source.exchange, subscription.source.exchange_type, durable=True
            )
            await queue.bind(foreign, routing_key=subscription.source.routing_key)
            return queue
        for routing_key in subscription.routing_keys:
            await queue.bind(self._settings.amqp_exchange, routing_key=routing_key)
        return queue

    async def _adopt_legacy_queues(
        self, subscription: Subscription, legacy: QueueNames, names: QueueNames
    ) -> None:
        """Move what the classic queues of an earlier version hold into their
        replacements and delete them; nothing to do once they are gone.

        The old main queue is unbound first (nothing new arrives), its retry queue is
        drained before it (a retry expiring meanwhile lands in the old main queue, drained
        next), its DLQ goes to the new DLQ. Each message is published, confirmed, then
        acked: none is lost, and a crash midway leaves at most a duplicate. A queue still
        consumed (an old worker running) is left for the next start.
        """
        moves = ((legacy.retry, names.main), (legacy.main, names.main))
        for old, new in (*moves, (legacy.dead_letter, names.dead_letter)):
            moved = await self._drain_queue(
                old, new, unbind=subscription.routing_keys if old == legacy.main else []
            )
            if moved is not None:
                log.info("adopted a legacy queue", queue=old, into=new, messages=moved)

    async def _drain_queue(self, old: str, new: str, *, unbind: list[str]) -> int | None:
        """Move `old`'s messages to `new` and delete `old`; None when `old` does not exist.

        Quorum queues refuse `queue.delete` with `if-unused`/`if-empty` (and the broker
        closes the connection for it), so emptiness and consumers are checked by a
        passive declare just before an unconditional delete.
        """
        channel = aio_pika.Channel(
            self._connection_or_raise(), publisher_confirms=True, on_return_raises=True
        )
        async with channel:
            try:
                queue = await channel.declare_queue(old, passive=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                return None
            for routing_key in unbind:
                await queue.unbind(self._settings.amqp_exchange, routing_key)
            moved = 0
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                await channel.default_exchange.publish(
                    _copy(message, {}), routing_key=new, mandatory=True
                )
                await message.ack()
                moved += 1
            state = (await channel.declare_queue(old, passive=True)).declaration_result
            if state.consumer_count or state.message_count:
                log.warning("legacy queue still in use; adopting it at the next start", queue=old)
            else:
                await channel.queue_delete(old)
            return moved

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


def _copy(message: AbstractIncomingMessage, extra_headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of a consumed message, for another queue (a new message: the
    broker's delivery count does not carry over)."""
    counts = {DELIVERY_COUNT_HEADER, ACQUIRED_COUNT_HEADER}
    headers = {k: v for k, v in (message.headers or {}).items() if k not in counts}
    return aio_pika.Message(
        message.body,
        headers={**headers, **extra_headers},
        content_type=message.content_type or JSON,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
    )


def _message(envelope: Envelope, headers: dict[str, str]) -> aio_pika.Message:
    return aio_pika.Message(
        envelope.model_dump_json().encode(),
        headers=dict(headers),
        content_type=JSON,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(envelope.id),
        correlation_id=envelope.correlation_id,
        type=envelope.type,
        timestamp=envelope.occurred_at,
    )


def _span_outcome(span: Span, outcome: str, error: Exception | None) -> None:
    """What became of the message; a handler's failure (retried or not) is an error."""
    span.set_attribute("kino.message.outcome", outcome)
    if error is not None:
        span.record_exception(error)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
    elif outcome == "dead_lettered":
        span.set_status(Status(StatusCode.ERROR, "dead-lettered"))


def _is_closed(channel: AbstractChannel | None) -> bool:
    return channel is None or channel.is_closed


def _envelope_of(message: AbstractIncomingMessage) -> Envelope | None:
    """The envelope of a message whose event did not validate, if it has one."""
    try:
        return Envelope.model_validate_json(message.body)
    except ValidationError:
        return None


def _deaths(message: AbstractIncomingMessage) -> int:
    """Deliveries of this message that ended without an ack (quorum queues count them)."""
    headers = message.headers or {}
    counts = [headers.get(name) for name in (DELIVERY_COUNT_HEADER, ACQUIRED_COUNT_HEADER)]
    return max((c for c in counts if isinstance(c, int) and c >= 0), default=0)


def _attempt(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return value if isinstance(value, int) and value >= 1 else 1


@contextlib.asynccontextmanager
async def connected_broker(
    settings: BrokerSettings,
    service: str,
    registry: CollectorRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[Broker]:
    broker = Broker(settings, service, registry, tracer_provider)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()
