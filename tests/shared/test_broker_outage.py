"""Broker outages for real: a private RabbitMQ node stopped for 20 s (`stop_app`) and
killed with -9, each then started again. Consumers of both kinds of queue (classic,
and quorum job queues) come back by themselves, readiness says when they are not
there, and every message published before and after the outage is handled once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aio_pika
import pytest

from shared.config import BrokerSettings
from shared.events import Envelope, UserRegistered
from shared.messaging import Broker, GivenUp, JobQueue, Subscription, connected_broker
from tests.polling import eventually
from tests.shared.broker_helpers import make_event
from tests.shared.rabbitmq_outage import PrivateNode, private_node

OUTAGE_SECONDS = 20.0
#: Reconnecting takes aio-pika's reconnect interval (5 s) and the restore itself.
RECOVERY_SECONDS = 60.0
#: A quorum queue's Raft state reaches the disk a few seconds after it is declared; a
#: single node killed before that loses the queue's leader (RabbitMQ 3.10). A broker
#: that is killed has been running a while: the test lets the new queues settle first.
QUORUM_SETTLE_SECONDS = 10.0


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with private_node() as running:
        yield running


class Recorder:
    """Counts the users each subscription saw."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def subscription(self, name: str, *, job: bool) -> Subscription:
        async def give_up(_: Envelope | None, given_up: GivenUp) -> None:
            raise AssertionError(f"no job should be given up here: {given_up}")

        subscription = Subscription(
            name, job=JobQueue(delivery_limit=3, give_up=give_up) if job else None
        )

        @subscription.on(UserRegistered)
        async def record(event: UserRegistered, _: Envelope) -> None:
            self.seen[f"{name}:{event.user_id}"] += 1

        return subscription


@pytest.fixture
async def broker(node: PrivateNode) -> AsyncIterator[Broker]:
    tag = uuid.uuid4().hex[:6]
    settings = BrokerSettings(
        amqp_url=node.url,
        amqp_exchange=f"kino.outage.{tag}",
        amqp_queue_prefix=f"outage.{tag}",
        amqp_retry_delay_seconds=0.2,
    )
    async with connected_broker(settings, "outage") as connected:
        yield connected


async def _counts_are(node: PrivateNode, names: list[str], expected: list[int]) -> bool:
    """The broker counts these consumers on these queues."""
    connection = await aio_pika.connect(node.url)
    async with connection:
        channel = await connection.channel()
        counts = []
        for name in names:
            queue = await channel.declare_queue(name, passive=True)
            counts.append(queue.declaration_result.consumer_count or 0)
        return counts == expected


async def _publish(broker: Broker, count: int) -> list[str]:
    users = []
    for _ in range(count):
        event = make_event()
        await broker.publish(event)
        users.append(event.user_id)
    return users


async def _survives(
    node: PrivateNode, broker: Broker, outage: Callable[[], Awaitable[None]]
) -> float:
    """Publish, cause the outage, publish again: every message handled once by both
    subscriptions. Returns the seconds from the broker's return to consumers back."""
    recorder = Recorder()
    subscriptions = [
        recorder.subscription("classic", job=False),
        recorder.subscription("jobs", job=True),
    ]
    queues = [(await broker.consume(s)).main for s in subscriptions]
    before = await _publish(broker, 5)
    await eventually(lambda: _all_seen(recorder, before), within=10)
    assert await broker.is_consuming()

    await outage()
    back = time.monotonic()
    await eventually(broker.is_consuming, within=RECOVERY_SECONDS, interval=0.2)
    recovery = time.monotonic() - back
    # The broker's own count (a quorum queue's may lag its consumer by a moment).
    await eventually(lambda: _counts_are(node, queues, [1, 1]), within=10, interval=0.2)

    after = await _publish(broker, 5)
    await eventually(lambda: _all_seen(recorder, before + after), within=10)
    assert set(recorder.seen.values()) == {1}, "a message was handled twice"
    return recovery


async def _all_seen(recorder: Recorder, users: list[str]) -> bool:
    expected = {f"{name}:{user}" for name in ("classic", "jobs") for user in users}
    return expected <= set(recorder.seen)


async def test_consumers_come_back_after_the_broker_app_stops_for_20_seconds(
    node: PrivateNode, broker: Broker
) -> None:
    async def outage() -> None:
        await asyncio.to_thread(node.stop_app)
        down = time.monotonic()
        await eventually(_not(broker.is_consuming), within=10, interval=0.1)
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down)))
        await asyncio.to_thread(node.start_app)

    recovery = await _survives(node, broker, outage)
    print(f"consumers back {recovery:.1f} s after the broker app started again")


async def test_consumers_come_back_after_the_broker_is_killed_and_restarted(
    node: PrivateNode, broker: Broker
) -> None:
    async def outage() -> None:
        await asyncio.sleep(QUORUM_SETTLE_SECONDS)
        await asyncio.to_thread(node.kill)
        await eventually(_not(broker.is_consuming), within=10, interval=0.1)
        await asyncio.to_thread(node.start)

    recovery = await _survives(node, broker, outage)
    print(f"consumers back {recovery:.1f} s after the killed broker started again")


def _not(check: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    async def negated() -> bool:
        return not await check()

    return negated
