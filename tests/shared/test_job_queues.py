"""Job queues (`Subscription.job`) against the real RabbitMQ: quorum queues whose
message is given up, reported and dead-lettered when its worker died on every
delivery the limit allows, when its retry budget is spent, or when it cannot be read;
and the classic queues of an earlier version adopted without losing a message."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from shared.events import Envelope, UserRegistered
from shared.messaging import (
    ERROR_HEADER,
    Broker,
    GivenUp,
    JobQueue,
    QueueNames,
    Subscription,
    connected_broker,
)
from tests.polling import eventually
from tests.shared.broker_helpers import TIMEOUT, BrokerSetup, RabbitView, make_event

SERVICE = "jobsvc"
DELIVERY_LIMIT = 2


@pytest.fixture
def broker_setup(namespace: str) -> BrokerSetup:
    return BrokerSetup(service=SERVICE, prefix=namespace, prefetch=1)


class Jobs:
    """A job subscription whose handler does what the test says, and what it gave up."""

    def __init__(self, name: str, *, legacy_name: str | None = None) -> None:
        self.name = name
        self.legacy_name = legacy_name
        self.given_up: asyncio.Queue[tuple[Envelope | None, GivenUp]] = asyncio.Queue()
        self.handled: asyncio.Queue[str] = asyncio.Queue()
        self.started = asyncio.Event()
        self.behaviour = "handle"

    def subscription(self) -> Subscription:
        async def give_up(envelope: Envelope | None, given_up: GivenUp) -> None:
            await self.given_up.put((envelope, given_up))

        legacy = () if self.legacy_name is None else (self.legacy_name,)
        job = JobQueue(DELIVERY_LIMIT, give_up, legacy_names=legacy)
        subscription = Subscription(self.name, job=job)

        @subscription.on(UserRegistered)
        async def run(event: UserRegistered, _: Envelope) -> None:
            self.started.set()
            if self.behaviour == "hang":
                await asyncio.Event().wait()
            if self.behaviour == "fail":
                raise RuntimeError("the store is down")
            await self.handled.put(event.user_id)

        return subscription


@pytest.fixture
def jobs() -> Jobs:
    return Jobs(f"jobs-{uuid.uuid4().hex[:6]}")


async def test_job_queue_is_a_quorum_queue_with_the_delivery_limit(
    broker: Broker, rabbit: RabbitView, jobs: Jobs, amqp: AbstractConnection
) -> None:
    names = await rabbit.start(broker, jobs.subscription())
    channel = await amqp.channel()
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
        # Declaring it classic contradicts what exists: it is a quorum queue.
        await channel.declare_queue(names.main, durable=True)


async def test_a_job_whose_worker_dies_every_time_is_given_up_as_worker_died(
    rabbit: RabbitView, jobs: Jobs
) -> None:
    jobs.behaviour = "hang"
    event = make_event()
    names: QueueNames | None = None
    for _ in range(DELIVERY_LIMIT):
        # A worker takes the job and dies: its connection goes, without an ack.
        jobs.started.clear()
        worker = Broker(rabbit.settings, SERVICE)
        await worker.connect()
        names = await rabbit.start(worker, jobs.subscription())
        if event is not None:
            await worker.publish(event)
            event = None  # published once; the broker redelivers it
        await asyncio.wait_for(jobs.started.wait(), TIMEOUT)
        assert worker._connection is not None
        await worker._connection.close()
    assert names is not None

    jobs.behaviour = "handle"
    async with connected_broker(rabbit.settings, SERVICE) as survivor:
        await rabbit.start(survivor, jobs.subscription())
        envelope, given_up = await asyncio.wait_for(jobs.given_up.get(), TIMEOUT)

    assert given_up.worker_died
    assert given_up.error is None
    assert envelope is not None
    assert envelope.type == UserRegistered.event_type
    assert jobs.handled.empty(), "a job given up must not run again"
    dead = await rabbit.take_one(names.dead_letter)
    assert "died" in str((dead.headers or {})[ERROR_HEADER])
    await rabbit.assert_none_ready(names.main)


async def test_a_job_whose_retries_are_spent_is_given_up_with_its_error(
    broker: Broker, rabbit: RabbitView, jobs: Jobs
) -> None:
    jobs.behaviour = "fail"
    names = await rabbit.start(broker, jobs.subscription())
    await broker.publish(make_event())

    envelope, given_up = await asyncio.wait_for(jobs.given_up.get(), TIMEOUT)

    assert not given_up.worker_died
    assert isinstance(given_up.error, RuntimeError)
    assert given_up.reason.startswith("attempts spent")
    assert envelope is not None
    dead = await rabbit.take_one(names.dead_letter)
    assert str((dead.headers or {})[ERROR_HEADER]).startswith("attempts spent")


async def test_an_unreadable_job_is_given_up_with_what_could_be_read(
    broker: Broker, rabbit: RabbitView, jobs: Jobs
) -> None:
    names = await rabbit.start(broker, jobs.subscription())
    envelope = Envelope(type=UserRegistered.event_type, version=1, data={"user_id": 7})
    await rabbit.publish_raw(envelope.model_dump_json().encode(), UserRegistered.event_type)
    await rabbit.publish_raw(b"not json at all", UserRegistered.event_type)

    first = await asyncio.wait_for(jobs.given_up.get(), TIMEOUT)
    second = await asyncio.wait_for(jobs.given_up.get(), TIMEOUT)

    assert first[0] is not None
    assert first[0].id == envelope.id
    assert first[1].reason.startswith("schema")
    assert second[0] is None
    await rabbit.take_one(names.dead_letter)
    await rabbit.take_one(names.dead_letter)


@pytest.fixture(params=["classic", "quorum"])
async def legacy(
    rabbit: RabbitView, amqp: AbstractConnection, request: pytest.FixtureRequest
) -> QueueNames:
    """The queues an earlier version declared (its main queue classic, or quorum as the
    transcoder's per-kind job queues were), each holding one message."""
    names = QueueNames.of(rabbit.settings.amqp_queue_prefix, SERVICE, f"old-{uuid.uuid4().hex[:6]}")
    rabbit.cleanup.extend([names.main, names.retry, names.dead_letter])
    channel = await amqp.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(
        rabbit.settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    await channel.declare_queue(names.dead_letter, durable=True)
    await channel.declare_queue(
        names.retry,
        durable=True,
        arguments={
            "x-message-ttl": 3_600_000,  # held: only draining gets it out in time
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": names.main,
        },
    )
    arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": names.dead_letter}
    if request.param == "quorum":
        arguments["x-queue-type"] = "quorum"
    main = await channel.declare_queue(names.main, durable=True, arguments=arguments)
    await main.bind(exchange, routing_key=UserRegistered.event_type)
    for queue, user in (
        (names.main, "in-main"),
        (names.retry, "in-retry"),
        (names.dead_letter, "in-dlq"),
    ):
        event = UserRegistered(user_id=user, email=f"{user}@example.org")
        body = Envelope.wrap(event, correlation_id=None).model_dump_json().encode()
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)
    await channel.close()
    return names


async def test_legacy_classic_queues_are_adopted_without_losing_a_message(
    broker: Broker, rabbit: RabbitView, legacy: QueueNames, amqp: AbstractConnection
) -> None:
    jobs = Jobs(f"new-{uuid.uuid4().hex[:6]}", legacy_name=legacy.main.rsplit(".", 1)[1])

    names = await rabbit.start(broker, jobs.subscription())

    handled = {await asyncio.wait_for(jobs.handled.get(), TIMEOUT) for _ in range(2)}
    assert handled == {"in-main", "in-retry"}
    dead = await rabbit.take_one(names.dead_letter)
    assert Envelope.model_validate_json(dead.body).data["user_id"] == "in-dlq"

    async def gone(name: str) -> bool:
        channel = await amqp.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return True
        await channel.close()
        return False

    for name in (legacy.main, legacy.retry, legacy.dead_letter):
        await eventually(lambda name=name: gone(name), within=TIMEOUT)
    # New events reach the new queue only.
    await broker.publish(UserRegistered(user_id="after", email="after@example.org"))
    assert await asyncio.wait_for(jobs.handled.get(), TIMEOUT) == "after"
