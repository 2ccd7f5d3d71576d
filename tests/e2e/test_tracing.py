"""One request through the gateway is one trace across gateway, catalog and transcoder.

A stack of its own (exchange, queue prefix, bucket and database of its own) runs with
`OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a small OTLP/HTTP receiver in this test
(`POST /v1/traces`, protobuf, decoded with `opentelemetry.proto`): what the services
export is what a collector or Jaeger would get.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from minio import Minio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from devstack.mongo_server import run_secantusdb
from devstack.ports import free_port
from devstack.services import start_services
from devstack.stores import StoreEndpoints
from tests.conftest import make_user, serve
from tests.e2e.test_trimming_api import post_video, trim_form
from tests.polling import eventually
from tests.stack_cleanup import declared_queues, delete_exchanges, remove_bucket
from tests.transcoder.media_factory import make_clip

WITHIN = 30.0

SERVER = ProtoSpan.SpanKind.SPAN_KIND_SERVER
CLIENT = ProtoSpan.SpanKind.SPAN_KIND_CLIENT
PRODUCER = ProtoSpan.SpanKind.SPAN_KIND_PRODUCER
CONSUMER = ProtoSpan.SpanKind.SPAN_KIND_CONSUMER


@dataclass(frozen=True)
class Received:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str


class Receiver:
    """The spans exported to this test, as an OTLP/HTTP collector receives them."""

    def __init__(self) -> None:
        self.spans: list[Received] = []

    async def traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        Received(
                            service,
                            span.name,
                            span.kind,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def find(self, service: str, kind: int, name: str) -> list[Received]:
        return [s for s in self.spans if (s.service, s.kind, s.name) == (service, kind, name)]

    def of_trace(self, trace_id: str) -> dict[str, Received]:
        return {s.span_id: s for s in self.spans if s.trace_id == trace_id}


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.traces)
    async with serve(app) as url:
        yield receiver, url


@pytest.fixture(scope="module")
async def traced_gateway(
    receiver: tuple[Receiver, str],
    service_env: dict[str, str],
    run_dir: Path,
    stores: StoreEndpoints,
    amqp_cleanup: list[str],
    s3: Minio,
) -> AsyncIterator[str]:
    """A stack exporting its spans to `receiver`; yields its gateway's URL."""
    prefix = f"traced-{uuid.uuid4().hex[:8]}"
    env = {
        **service_env,
        "KINO_AMQP_EXCHANGE": f"kino.{prefix}",
        "KINO_AMQP_QUEUE_PREFIX": prefix,
        "KINO_STORAGE_EVENTS_EXCHANGE": f"kino.storage.{prefix}",
        "KINO_S3_BUCKET": f"kino-{prefix}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver[1],
        # Exported within 100 ms of ending, not the default 5 s.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    amqp_cleanup.extend(declared_queues(prefix))
    with contextlib.ExitStack() as stop:
        # A database of its own: the session's catalog must not see this one's jobs.
        mongo = await asyncio.to_thread(
            stop.enter_context,
            run_secantusdb(
                port=free_port(), storage=None, log_path=run_dir / prefix / "secantusdb.log"
            ),
        )
        env["KINO_MONGO_URL"] = mongo.url
        running = await asyncio.to_thread(stop.enter_context, start_services(env, run_dir / prefix))
        try:
            yield running.gateway_url
        finally:
            await asyncio.to_thread(stop.close)
            await delete_exchanges(
                stores.amqp_url, env["KINO_AMQP_EXCHANGE"], env["KINO_STORAGE_EVENTS_EXCHANGE"]
            )
            await asyncio.to_thread(remove_bucket, s3, env["KINO_S3_BUCKET"])


async def test_an_upload_through_the_gateway_is_one_trace_down_to_the_transcoder_and_back(
    receiver: tuple[Receiver, str],
    traced_gateway: str,
    tmp_path: Path,
) -> None:
    spans, _ = receiver
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, size=(160, 120))
    async with aiohttp.ClientSession() as http:
        account = await make_user(http, traced_gateway)
        client_trace = "0af7651916cd43dd8448eb211c80319c"
        http.headers["traceparent"] = f"00-{client_trace}-b7ad6b7169203331-01"
        status, _ = await post_video(
            http, traced_gateway, account, trim_form(clip.read_bytes(), start="0.5", duration="1")
        )
        assert status == 201

    def consumed(service: str, event_type: str) -> list[Received]:
        return spans.find(service, CONSUMER, f"process {event_type}")

    def reaches_a_root(span: Received) -> bool:
        trace = spans.of_trace(span.trace_id)
        while span.parent_id in trace:
            span = trace[span.parent_id]
        return not span.parent_id

    async def back_at_catalog() -> list[Received] | None:
        # The transcoder's result, consumed by catalog (by its results, webhook and
        # event-log queues alike): the far end of the trace, once every span up to its
        # root was exported (each service exports on its own, the transcoder's
        # consumer span last: it ends after the result is published).
        found = consumed("catalog", "trim.completed")
        return found if found and all(reaches_a_root(s) for s in found) else None

    done, *also_done = await eventually(back_at_catalog, within=WITHIN, interval=0.1)
    assert {s.trace_id for s in also_done} <= {done.trace_id}
    trace = spans.of_trace(done.trace_id)

    def parent(span: Received) -> Received:
        assert span.parent_id in trace, f"{span} has no parent in its trace"
        return trace[span.parent_id]

    def ancestors(span: Received) -> list[Received]:
        chain = []
        while span.parent_id:
            span = parent(span)
            chain.append(span)
        return chain

    # Gateway SERVER (the root: the client's traceparent is only linked) → gateway
    # CLIENT → catalog SERVER → … → publish trim.requested → transcoder CONSUMER →
    # publish trim.completed → catalog CONSUMER.
    path = [(s.service, s.kind, s.name) for s in reversed([done, *ancestors(done)])]
    root = ("gateway", SERVER, "POST /api/v1/users/videos")
    assert path[:3] == [
        root,
        ("gateway", CLIENT, "POST /api/v1/users/videos"),
        ("catalog", SERVER, "POST /api/v1/users/videos"),
    ]
    assert ("catalog", PRODUCER, "publish trim.requested") in path
    assert path[-3:] == [
        ("transcoder", CONSUMER, "process trim.requested"),
        ("transcoder", PRODUCER, "publish trim.completed"),
        ("catalog", CONSUMER, "process trim.completed"),
    ]
    assert done.trace_id != client_trace
    # The job's progress events belong to the same trace.
    assert any(s.name == "process job.progressed" for s in trace.values())
