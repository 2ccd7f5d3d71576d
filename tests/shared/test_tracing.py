"""Tracing (`shared.tracing`): server spans of `new_service_app`, and the trace context
carried by messages through the real RabbitMQ and through an outbox in a real MongoDB.

Spans are read with the SDK's `InMemorySpanExporter`, added to the provider under test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    SpanKind,
    StatusCode,
    format_span_id,
    format_trace_id,
    get_current_span,
)
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from devstack.stores import StoreEndpoints
from shared.app_factory import new_service_app
from shared.config import BrokerSettings, KinoSettings
from shared.events import Envelope, UserRegistered
from shared.identity import IDENTITY_HEADER, Identity, IdentitySigner
from shared.messaging import Subscription, connected_broker
from shared.outbox import OutboxRelay, outbox_entry
from shared.tracing import TRACER_PROVIDER, new_tracer_provider, trace_as
from tests.conftest import serve
from tests.polling import eventually
from tests.shared.broker_helpers import BrokerSetup, RabbitView, make_event

SERVICE = "tracing-test"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def broker_setup(namespace: str) -> BrokerSetup:
    return BrokerSetup(service=SERVICE, prefix=f"{namespace}.tracing")


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider as a service makes one (no OTLP endpoint here), its spans kept in memory."""
    provider = new_tracer_provider(SERVICE, environ={})
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider
    provider.shutdown()


@pytest.fixture(scope="module")
async def database(stores: StoreEndpoints) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stores.mongo_url)
    name = f"test_tracing_{uuid.uuid4().hex[:10]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


# -- helpers -------------------------------------------------------------------


def things_app(*, verify_identity: bool) -> web.Application:
    app = new_service_app(KinoSettings(), errors={}, verify_identity=verify_identity)
    trace_as(app, SERVICE)

    async def thing(request: web.Request) -> web.Response:
        if request.match_info["thing_id"] == "missing":
            raise web.HTTPNotFound()
        if request.match_info["thing_id"] == "broken":
            raise RuntimeError("broken thing")
        return web.json_response({"id": request.match_info["thing_id"]})

    app.router.add_get("/things/{thing_id}", thing)
    return app


def memorize(app: web.Application, spans: InMemorySpanExporter) -> None:
    """Keep the started app's spans in `spans`."""
    app[TRACER_PROVIDER].add_span_processor(SimpleSpanProcessor(spans))


def identity_headers() -> dict[str, str]:
    signer = IdentitySigner(KinoSettings().internal_secret.get_secret_value())
    return {IDENTITY_HEADER: signer.sign(Identity(user_id="u1"))}


def of_kind(spans: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.kind is kind]


def attributes(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


# -- server spans --------------------------------------------------------------


async def test_a_service_continues_its_callers_trace_in_a_server_span_named_by_route(
    spans: InMemorySpanExporter,
) -> None:
    app = things_app(verify_identity=True)
    async with serve(app) as url, aiohttp.ClientSession() as http:
        memorize(app, spans)
        headers = {**identity_headers(), "traceparent": TRACEPARENT}
        for thing_id in ("a1", "b2", "missing", "broken"):
            async with http.get(f"{url}/things/{thing_id}", headers=headers) as response:
                await response.read()

    served = of_kind(spans, SpanKind.SERVER)
    assert [s.name for s in served] == ["GET /things/{thing_id}"] * 4  # ids stay out
    by_path = {attributes(s)["url.path"]: s for s in served}
    for span in served:
        assert format_trace_id(span.context.trace_id) == TRACE_ID
        assert parent_id(span) == int(PARENT_ID, 16)
        assert span.resource.attributes["service.name"] == SERVICE
        assert attributes(span)["http.request.method"] == "GET"
        assert attributes(span)["http.route"] == "/things/{thing_id}"
        assert attributes(span)["kino.request_id"]
    statuses = {path: attributes(s)["http.response.status_code"] for path, s in by_path.items()}
    assert statuses == {
        "/things/a1": 200,
        "/things/b2": 200,
        "/things/missing": 404,
        "/things/broken": 500,
    }
    assert by_path["/things/a1"].status.status_code is StatusCode.UNSET
    assert by_path["/things/missing"].status.status_code is StatusCode.UNSET  # a 4xx is no error
    assert by_path["/things/broken"].status.status_code is StatusCode.ERROR


async def test_a_public_edge_starts_its_own_trace_and_only_links_to_the_clients(
    spans: InMemorySpanExporter,
) -> None:
    app = things_app(verify_identity=False)
    async with serve(app) as url, aiohttp.ClientSession() as http:
        memorize(app, spans)
        async with http.get(f"{url}/things/a1", headers={"traceparent": TRACEPARENT}) as response:
            assert response.status == 200
        async with http.get(f"{url}/things/a2") as response:
            assert response.status == 200

    linked, plain = of_kind(spans, SpanKind.SERVER)
    assert linked.parent is None
    assert format_trace_id(linked.context.trace_id) != TRACE_ID
    assert [format_trace_id(link.context.trace_id) for link in linked.links] == [TRACE_ID]
    assert [format_span_id(link.context.span_id) for link in linked.links] == [PARENT_ID]
    assert plain.parent is None
    assert list(plain.links) == []


# -- messages ------------------------------------------------------------------


async def test_a_message_is_handled_in_a_consumer_span_of_its_publishers_trace(
    settings: BrokerSettings,
    rabbit: RabbitView,
    provider: TracerProvider,
    spans: InMemorySpanExporter,
) -> None:
    """Also when the first delivery fails and the message comes back from the retry queue."""
    subscription = Subscription(name=f"sub-{uuid.uuid4().hex[:6]}")
    seen: list[tuple[int, int]] = []  # (trace id, span id) current in the handler

    @subscription.on(UserRegistered)
    async def handle(_: UserRegistered, __: Envelope) -> None:
        context = get_current_span().get_span_context()
        seen.append((context.trace_id, context.span_id))
        if len(seen) == 1:
            raise RuntimeError("first delivery fails")

    async with connected_broker(settings, SERVICE, tracer_provider=provider) as broker:
        await rabbit.start(broker, subscription)
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("request") as request_span:
            envelope = await broker.publish(make_event(), correlation_id="req-tracing-1")

        async def handled_twice() -> bool:
            return len(of_kind(spans, SpanKind.CONSUMER)) == 2

        await eventually(handled_twice, within=10)

    trace_id = request_span.get_span_context().trace_id
    [producer] = of_kind(spans, SpanKind.PRODUCER)
    assert producer.name == "publish user.registered"
    assert producer.context.trace_id == trace_id
    assert parent_id(producer) == request_span.get_span_context().span_id
    assert attributes(producer)["messaging.system"] == "rabbitmq"
    assert attributes(producer)["messaging.destination.name"] == settings.amqp_exchange
    assert attributes(producer)["messaging.message.id"] == str(envelope.id)

    failed, retried = of_kind(spans, SpanKind.CONSUMER)
    for consumer in (failed, retried):
        assert consumer.name == "process user.registered"
        assert consumer.context.trace_id == trace_id
        assert parent_id(consumer) == producer.context.span_id
        assert attributes(consumer)["messaging.message.id"] == str(envelope.id)
        assert attributes(consumer)["messaging.message.conversation_id"] == "req-tracing-1"
    assert failed.status.status_code is StatusCode.ERROR
    assert attributes(failed)["kino.message.outcome"] == "retried"
    assert retried.status.status_code is StatusCode.UNSET
    assert attributes(retried)["kino.attempt"] == 2
    # The handler ran inside each consumer span.
    assert seen == [(trace_id, failed.context.span_id), (trace_id, retried.context.span_id)]


async def test_an_event_the_outbox_sweep_publishes_continues_the_trace_it_was_made_in(
    settings: BrokerSettings,
    rabbit: RabbitView,
    provider: TracerProvider,
    spans: InMemorySpanExporter,
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    subscription = Subscription(name=f"sub-{uuid.uuid4().hex[:6]}")
    handled: list[uuid.UUID] = []

    @subscription.on(UserRegistered)
    async def handle(_: UserRegistered, envelope: Envelope) -> None:
        handled.append(envelope.id)

    collection = database[f"users_{uuid.uuid4().hex[:8]}"]
    envelope = Envelope.wrap(make_event(), correlation_id="req-tracing-2")
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("registration") as made_in:
        entry = outbox_entry(envelope)
    await collection.insert_one({"_id": "u1", "outbox": [entry]})

    async with connected_broker(settings, SERVICE, tracer_provider=provider) as broker:
        await rabbit.start(broker, subscription)
        # Later, outside any span, as the periodic sweep runs.
        assert await OutboxRelay(collection, broker, grace_seconds=0.0).sweep() == 1

        async def was_handled() -> bool:
            return bool(of_kind(spans, SpanKind.CONSUMER))

        await eventually(was_handled, within=10)

    assert handled == [envelope.id]
    [producer] = of_kind(spans, SpanKind.PRODUCER)
    [consumer] = of_kind(spans, SpanKind.CONSUMER)
    assert producer.context.trace_id == made_in.get_span_context().trace_id
    assert parent_id(producer) == made_in.get_span_context().span_id
    assert consumer.context.trace_id == made_in.get_span_context().trace_id
    assert parent_id(consumer) == producer.context.span_id


async def test_an_event_made_in_no_span_is_published_in_a_trace_of_its_own(
    settings: BrokerSettings,
    rabbit: RabbitView,
    provider: TracerProvider,
    spans: InMemorySpanExporter,
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    collection = database[f"users_{uuid.uuid4().hex[:8]}"]
    entry = outbox_entry(Envelope.wrap(make_event(), correlation_id=None))
    assert "trace" not in entry
    await collection.insert_one({"_id": "u1", "outbox": [entry]})
    async with connected_broker(settings, SERVICE, tracer_provider=provider) as broker:
        await rabbit.probe_queue()
        await OutboxRelay(collection, broker).flush("u1")
    [producer] = of_kind(spans, SpanKind.PRODUCER)
    assert producer.parent is None
