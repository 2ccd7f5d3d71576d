"""Fixtures of the `shared` tests that talk to the real RabbitMQ (messaging, outbox).

A module using `settings`, `broker` or `rabbit` defines a `broker_setup` fixture
(`tests.shared.broker_helpers.BrokerSetup`) saying what its broker is.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from devstack.stores import StoreEndpoints
from shared.config import BrokerSettings
from shared.messaging import Broker, connected_broker
from tests.shared.broker_helpers import BrokerSetup, RabbitView


@pytest.fixture
async def amqp(stores: StoreEndpoints) -> AsyncIterator[AbstractConnection]:
    """A plain aio-pika connection for the test's own look at the broker."""
    connection = await aio_pika.connect(stores.amqp_url)
    async with connection:
        yield connection


@pytest.fixture
async def settings(
    stores: StoreEndpoints, broker_setup: BrokerSetup, amqp: AbstractConnection
) -> AsyncIterator[BrokerSettings]:
    """An exchange and a queue prefix no other test uses, retrying fast; the exchange is
    deleted at the end of the test (the queues at the end of the session)."""
    tag = uuid.uuid4().hex[:6]
    overrides: dict[str, Any] = {}
    if broker_setup.prefetch is not None:
        overrides["amqp_prefetch"] = broker_setup.prefetch
    settings = BrokerSettings(
        amqp_url=stores.amqp_url,
        amqp_exchange=f"kino.{broker_setup.prefix}.{tag}",
        amqp_queue_prefix=f"{broker_setup.prefix}.{tag}",
        amqp_retry_delay_seconds=0.2,
        amqp_max_attempts=3,
        **overrides,
    )
    yield settings
    channel = await amqp.channel()
    await channel.exchange_delete(settings.amqp_exchange)
    await channel.close()


@pytest.fixture
async def broker(settings: BrokerSettings, broker_setup: BrokerSetup) -> AsyncIterator[Broker]:
    """The `Broker` under test, connected."""
    async with connected_broker(settings, broker_setup.service) as broker:
        yield broker


@pytest.fixture
def rabbit(
    amqp: AbstractConnection, settings: BrokerSettings, amqp_cleanup: list[str]
) -> RabbitView:
    return RabbitView(amqp, settings, amqp_cleanup)
