"""OpenTelemetry tracing: one `TracerProvider` per service, W3C trace context on the wire.

What is traced: every HTTP request a service serves (a SERVER span named after its
route, `tracing_middleware`), the gateway's forward to a service (a CLIENT span,
`services/gateway/proxy.py`), every event published (PRODUCER, `publish <type>`) and
every message consumed (CONSUMER, `process <type>`, `shared/messaging.py`). The
context travels in the `traceparent`/`tracestate` HTTP headers and AMQP message
headers, and with an event waiting in an outbox (`shared/outbox.py`), so one trace
runs from the gateway's request to the transcoder's job and back.

Spans are always made, so the context always travels; they leave the process only
when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
then a `BatchSpanProcessor` sends them over OTLP/HTTP (protobuf). The exporter and the
processor read their other `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` variables
themselves, the sampler `OTEL_TRACES_SAMPLER`, the SDK `OTEL_SDK_DISABLED`; the
resource takes `OTEL_RESOURCE_ATTRIBUTES`. `service.name` is the service's own name
(`auth`, `catalog`, …) unless `OTEL_SERVICE_NAME` names the process otherwise.

Only W3C trace context is propagated (not baggage, not the `OTEL_PROPAGATORS`
choice): the one format every hop here speaks, and nothing a client sends besides a
parent to link to crosses the gateway.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass

from aiohttp import web
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.http import REQUEST_ID, Handler

#: The instrumentation scope of Kino's own spans.
SCOPE = "kino"
#: The name of a service whose app was not given one (`trace_as`): apps built in a test.
DEFAULT_SERVICE_NAME = "kino"
#: Set, either of them turns exporting on (the exporter appends `/v1/traces` to the first).
EXPORT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACE_HEADERS = ("traceparent", "tracestate")

_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class TracedAs:
    """Whose spans an app makes."""

    service: str


TRACED_AS: web.AppKey[TracedAs] = web.AppKey("traced_as", TracedAs)
TRACER_PROVIDER: web.AppKey[TracerProvider] = web.AppKey("tracer_provider", TracerProvider)
TRACER: web.AppKey[Tracer] = web.AppKey("tracer", Tracer)

Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
HttpRoute = Callable[[web.Request], str | None]


def trace_as(app: web.Application, service: str) -> None:
    """Name the service whose spans `app` makes (before it starts)."""
    app[TRACED_AS] = TracedAs(service)


def exporting(environ: Mapping[str, str]) -> bool:
    return any(environ.get(name) for name in EXPORT_VARIABLES)


def new_tracer_provider(service: str, environ: Mapping[str, str] = os.environ) -> TracerProvider:
    """A provider for `service`; with an OTLP endpoint configured, it exports in batches."""
    name = environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: name}), shutdown_on_exit=False
    )
    if exporting(environ):
        # Imported only when used: the exporter pulls in requests and protobuf.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


async def tracing_context(app: web.Application) -> AsyncIterator[None]:
    """`cleanup_ctx`: the app's provider and tracer, flushed and shut down at the end.

    Passed explicitly to what makes spans (the middleware, the broker through
    `shared/lifecycle.py`); the OpenTelemetry API's global provider is never set, so
    several apps in one process (tests) keep their spans apart.
    """
    traced = app.get(TRACED_AS) or TracedAs(DEFAULT_SERVICE_NAME)
    provider = new_tracer_provider(traced.service)
    app[TRACER_PROVIDER] = provider
    app[TRACER] = provider.get_tracer(SCOPE)
    try:
        yield
    finally:
        provider.shutdown()  # flushes what the batch processor still holds


def tracer_of(request: web.Request) -> Tracer:
    """The tracer of the app serving `request` (the API's global one for an app
    without `tracing_context`)."""
    return request.config_dict.get(TRACER) or trace.get_tracer(SCOPE)


# -- propagation ---------------------------------------------------------------


class _HeaderGetter(Getter[Mapping[str, object]]):
    """Reads HTTP headers and AMQP header tables (whose strings may arrive as bytes)."""

    def get(self, carrier: Mapping[str, object], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, object]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


def inject(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write `context` (default: the current one) as `traceparent`/`tracestate`."""
    _PROPAGATOR.inject(carrier, context)


def extract(carrier: Mapping[str, object] | None) -> Context:
    """The context `carrier`'s `traceparent` names (an empty context without one)."""
    return _PROPAGATOR.extract(carrier or {}, getter=_GETTER)


def current_trace_headers() -> dict[str, str]:
    """The current context as headers; empty when there is no span to continue."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


# -- HTTP server spans ---------------------------------------------------------


def canonical_route(request: web.Request) -> str | None:
    """The route's template (`/video/my/{hash_id}/retry`), not the path with its ids."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def tracing_middleware(
    *, public: bool = False, http_route: HttpRoute = canonical_route
) -> Middleware:
    """A SERVER span around each request, named `<method> <route>`.

    An internal service continues the trace its caller's `traceparent` names (the
    gateway's). A public edge (`public=True`, the gateway) starts a new trace for every
    request and only links to a `traceparent` the client sent: trace ids are ours, so a
    client cannot join its requests to another's trace, pick ids, or switch sampling
    off for what it causes, while a client's own tracing can still find its request.
    (Continuing a client's trace, the other common choice, fits an edge whose callers
    are trusted; the gateway's are not.)
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = extract(request.headers)
        links: list[Link] = []
        parent = incoming
        if public:
            client = trace.get_current_span(incoming).get_span_context()
            links = [Link(client)] if client.is_valid else []
            parent = Context()
        route = http_route(request)
        attributes: dict[str, str | int] = {
            "http.request.method": request.method,
            "url.path": request.path,
            "url.scheme": request.scheme,
        }
        if route is not None:
            attributes["http.route"] = route
        with tracer_of(request).start_as_current_span(
            f"{request.method} {route}" if route else request.method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                _server_status(span, exc.status)
                raise
            except Exception as exc:
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                _server_status(span, 500)
                raise
            finally:
                if REQUEST_ID in request:
                    span.set_attribute("kino.request_id", request[REQUEST_ID])
            _server_status(span, response.status)
            return response

    return middleware


def _server_status(span: trace.Span, status: int) -> None:
    """A server's span is an error on 5xx only (a 4xx is the client's mistake)."""
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))
