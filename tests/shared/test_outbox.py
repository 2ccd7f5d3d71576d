"""`shared.outbox.OutboxRelay` with a real MongoDB collection and a real broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractQueue
from aiormq.exceptions import ChannelInvalidStateError
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from devstack.stores import StoreEndpoints
from shared.config import BrokerSettings
from shared.events import Envelope
from shared.messaging import Broker
from shared.outbox import OUTBOX_FIELD, OutboxRelay, outbox_entry
from tests.shared.broker_helpers import BrokerSetup, RabbitView, make_event

Document = dict[str, Any]


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
async def database(stores: StoreEndpoints) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of this module's own, dropped at the end."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(stores.mongo_url)
    name = f"test_outbox_{uuid.uuid4().hex[:10]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture
def collection(database: AsyncDatabase[Document]) -> AsyncCollection[Document]:
    """A fresh collection per test."""
    return database[f"users_{uuid.uuid4().hex[:8]}"]


@pytest.fixture
def broker_setup(namespace: str) -> BrokerSetup:
    return BrokerSetup(service="outbox-test", prefix=f"{namespace}.outbox")


@pytest.fixture
async def published(broker: Broker, rabbit: RabbitView) -> AbstractQueue:
    """A queue receiving every `user.registered` the test's broker publishes."""
    return await rabbit.probe_queue()


# -- helpers -------------------------------------------------------------------


def pending_envelope(correlation_id: str = "req-outbox") -> Envelope:
    return Envelope.wrap(make_event(), correlation_id=correlation_id)


async def insert_with_outbox(
    collection: AsyncCollection[Document], *envelopes: Envelope, age: timedelta | None = None
) -> str:
    """A user document written together with its pending events, as a service does."""
    entries = [outbox_entry(envelope) for envelope in envelopes]
    if age is not None:
        for entry in entries:
            entry["at"] = datetime.now(UTC) - age
    document_id = uuid.uuid4().hex
    await collection.insert_one({"_id": document_id, "email": "x@example.org", "outbox": entries})
    return document_id


async def drain(queue: AbstractQueue) -> list[Envelope]:
    """Everything in the queue right now (publishing is confirmed, so nothing is late)."""
    envelopes = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        envelopes.append(Envelope.model_validate_json(message.body))
    return envelopes


async def outbox_of(collection: AsyncCollection[Document], document_id: str) -> list[Document]:
    document = await collection.find_one({"_id": document_id})
    assert document is not None
    entries: list[Document] = document[OUTBOX_FIELD]
    return entries


# -- tests ---------------------------------------------------------------------


async def test_flush_publishes_the_pending_event_and_pulls_it_from_the_document(
    collection: AsyncCollection[Document], broker: Broker, published: AbstractQueue
) -> None:
    envelope = pending_envelope()
    document_id = await insert_with_outbox(collection, envelope)

    await OutboxRelay(collection, broker).flush(document_id)

    assert await drain(published) == [envelope]
    assert await outbox_of(collection, document_id) == []
    document = await collection.find_one({"_id": document_id})
    assert document is not None
    assert document["email"] == "x@example.org"  # the rest of the document is untouched


async def test_flush_publishes_every_pending_event_of_the_document_in_order(
    collection: AsyncCollection[Document], broker: Broker, published: AbstractQueue
) -> None:
    first, second = pending_envelope(), pending_envelope()
    document_id = await insert_with_outbox(collection, first, second)

    await OutboxRelay(collection, broker).flush(document_id)

    assert await drain(published) == [first, second]
    assert await outbox_of(collection, document_id) == []


async def test_flush_leaves_other_documents_alone(
    collection: AsyncCollection[Document], broker: Broker, published: AbstractQueue
) -> None:
    mine, theirs = pending_envelope(), pending_envelope()
    document_id = await insert_with_outbox(collection, mine)
    other_id = await insert_with_outbox(collection, theirs)

    await OutboxRelay(collection, broker).flush(document_id)

    assert await drain(published) == [mine]
    assert [entry["id"] for entry in await outbox_of(collection, other_id)] == [str(theirs.id)]


async def test_sweep_publishes_entries_older_than_the_grace_period(
    collection: AsyncCollection[Document], broker: Broker, published: AbstractQueue
) -> None:
    first, second = pending_envelope(), pending_envelope()
    first_id = await insert_with_outbox(collection, first)
    second_id = await insert_with_outbox(collection, second)

    count = await OutboxRelay(collection, broker, grace_seconds=0).sweep()

    assert count == 2
    assert {envelope.id for envelope in await drain(published)} == {first.id, second.id}
    assert await outbox_of(collection, first_id) == []
    assert await outbox_of(collection, second_id) == []


async def test_sweep_does_not_publish_entries_within_the_grace_period(
    collection: AsyncCollection[Document], broker: Broker, published: AbstractQueue
) -> None:
    fresh = pending_envelope()
    document_id = await insert_with_outbox(collection, fresh)

    count = await OutboxRelay(collection, broker, grace_seconds=3600).sweep()

    assert count == 0
    assert await drain(published) == []
    assert [entry["id"] for entry in await outbox_of(collection, document_id)] == [str(fresh.id)]


async def test_sweep_publishes_only_the_documents_whose_entries_are_past_grace(
    collection: AsyncCollection[Document], broker: Broker, published: AbstractQueue
) -> None:
    stale, fresh = pending_envelope(), pending_envelope()
    stale_id = await insert_with_outbox(collection, stale, age=timedelta(minutes=5))
    fresh_id = await insert_with_outbox(collection, fresh)

    count = await OutboxRelay(collection, broker, grace_seconds=60).sweep()

    assert count == 1
    assert await drain(published) == [stale]
    assert await outbox_of(collection, stale_id) == []
    assert [entry["id"] for entry in await outbox_of(collection, fresh_id)] == [str(fresh.id)]


async def test_flush_with_broker_unavailable_raises_and_keeps_the_entry_for_the_sweep(
    collection: AsyncCollection[Document],
    settings: BrokerSettings,
    broker: Broker,
    published: AbstractQueue,
) -> None:
    envelope = pending_envelope()
    document_id = await insert_with_outbox(collection, envelope)
    down = Broker(settings, "outbox-test-down")
    await down.connect()
    await down.close()

    with pytest.raises(ChannelInvalidStateError):
        await OutboxRelay(collection, down).flush(document_id)

    assert [entry["id"] for entry in await outbox_of(collection, document_id)] == [str(envelope.id)]
    assert await drain(published) == []

    # The next sweep, with the broker back, publishes it.
    count = await OutboxRelay(collection, broker, grace_seconds=0).sweep()
    assert count == 1
    assert await drain(published) == [envelope]
    assert await outbox_of(collection, document_id) == []
