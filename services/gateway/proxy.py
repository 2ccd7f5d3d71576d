"""Streams a request to an upstream service and its response back, never buffering a body.

Headers are rebuilt, not passed through: hop-by-hop headers, `Authorization` (the
gateway has consumed it) and every client-sent identity header are dropped; the
gateway adds its signed identity assertion, the request id and forwarding headers.

Tracing: each forward is a CLIENT span, child of the gateway's SERVER span, and its
context replaces whatever trace headers the client sent (`traceparent`, `tracestate`,
`baggage`): the service continues the gateway's trace, never one a client named (the
gateway's SERVER span only links to a client's `traceparent`, see
`shared.tracing.tracing_middleware`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from yarl import URL

from services.gateway.routing import match
from shared import tracing
from shared.http import REQUEST_ID_HEADER, ErrorStyle
from shared.identity import IDENTITY_HEADER

log = structlog.get_logger(__name__)

CHUNK_BYTES = 256 * 1024

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
#: Identity headers some proxies and frameworks trust; a client must not set them.
_IDENTITY_HEADERS = frozenset(
    {
        "authorization",
        "x-user-id",
        "x-user",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-remote-user",
        "remote-user",
        "x-auth-user",
        "x-auth-request-user",
        "x-auth-request-email",
        "x-authenticated-user",
        "x-authenticated-userid",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "forwarded",
    }
)
#: Trace context a client sent: replaced by the gateway's own.
_TRACE_HEADERS = frozenset({*tracing.TRACE_HEADERS, "baggage"})


class BodyTooLarge(Exception):
    pass


@dataclass(frozen=True)
class Forwarding:
    """What the gateway adds to a forwarded request."""

    identity_assertion: str
    request_id: str
    client_address: str
    #: The Host and scheme the client asked for (`X-Forwarded-Host`/`-Proto`): the
    #: services build links back to the gateway from them.
    host: str
    scheme: str


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    timeout: aiohttp.ClientTimeout


def upstream_request_headers(
    incoming: Mapping[str, str], forwarding: Forwarding
) -> CIMultiDict[str]:
    """The forwarded request's headers; its trace context is the current one (the
    forward's CLIENT span), never the client's."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lowered = name.lower()
        if (
            lowered in _HOP_BY_HOP
            or lowered in _IDENTITY_HEADERS
            or lowered in _TRACE_HEADERS
            or lowered.startswith("x-kino-")
        ):
            continue
        headers.add(name, value)
    headers[IDENTITY_HEADER] = forwarding.identity_assertion
    headers[REQUEST_ID_HEADER] = forwarding.request_id
    headers["X-Forwarded-For"] = forwarding.client_address
    headers["X-Forwarded-Host"] = forwarding.host
    headers["X-Forwarded-Proto"] = forwarding.scheme
    headers.update(tracing.current_trace_headers())
    return headers


def route_template(path: str) -> str | None:
    """The routing table's entry for `path` as a span's route: fixed alternatives as
    matched, other segments `{id}`, a prefix entry ending in `*`
    (`/video/user/{id}/`, `/api/v1/users/session`, `/video/*`); None off the table."""
    route = match(path)
    found = route.pattern.match(path) if route is not None else None
    if route is None or found is None:
        return None
    groups = iter(found.groups())
    template = re.sub(r"\([^()]*\)", lambda _: next(groups, None) or "", route.pattern.pattern)
    template = template.replace("[^/]+", "{id}").replace("/?", "/").removeprefix("^")
    return template.removesuffix("$") if template.endswith("$") else template + "*"


def http_route(request: web.Request) -> str | None:
    """A gateway request's route for its spans: the routing table's entry for a
    proxied path (the gateway's own route is one catch-all), else the gateway's route."""
    return route_template(request.path) or tracing.canonical_route(request)


def _response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict(
        (name, value)
        for name, value in upstream.items()
        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length"
    )


async def _limited_body(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        received += len(chunk)
        if received > limit:
            # Raising (not returning) aborts the upstream request: a truncated body
            # must never look complete to the service.
            raise BodyTooLarge
        yield chunk


async def forward(
    request: web.Request,
    session: aiohttp.ClientSession,
    url: str,
    forwarding: Forwarding,
    limits: Limits,
    style: ErrorStyle,
) -> web.StreamResponse:
    """Proxy one request; 413 over the body limit, 502 upstream down, 504 upstream silent.

    A CLIENT span covers it, upstream response streamed back included; its context is
    the `traceparent` the service gets."""
    route = http_route(request)
    upstream = URL(url)
    with tracing.tracer_of(request).start_as_current_span(
        f"{request.method} {route}" if route else request.method,
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": request.method,
            "server.address": upstream.host or "",
            "server.port": upstream.port or 0,
            "url.full": url,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            response = await _forward(request, session, url, forwarding, limits, style, span)
        except Exception as exc:
            span.record_exception(exc)
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
            raise
        if response.status >= 400:
            # A client's span is an error from 4xx on (semantic conventions).
            span.set_attribute("error.type", str(response.status))
            span.set_status(Status(StatusCode.ERROR))
        return response


async def _forward(
    request: web.Request,
    session: aiohttp.ClientSession,
    url: str,
    forwarding: Forwarding,
    limits: Limits,
    style: ErrorStyle,
    span: Span,
) -> web.StreamResponse:
    too_large = style.error(413, f"Request body exceeds {limits.max_body_bytes} bytes")
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        return too_large
    body = _limited_body(request, limits.max_body_bytes) if request.body_exists else None
    headers = upstream_request_headers(request.headers, forwarding)
    response: web.StreamResponse | None = None
    try:
        async with session.request(
            request.method,
            url,
            params=request.rel_url.query,
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=limits.timeout,
            auto_decompress=False,
        ) as upstream:
            span.set_attribute("http.response.status_code", upstream.status)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.extend(_response_headers(upstream.headers))
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(CHUNK_BYTES):
                await response.write(chunk)
            await response.write_eof()
            return response
    except BodyTooLarge:
        return too_large
    except (TimeoutError, aiohttp.ServerTimeoutError):
        if response is not None and response.prepared:
            raise
        log.warning("upstream timed out", url=url)
        return style.error(504, "Upstream service timed out")
    except aiohttp.ClientError as exc:
        if _cause_is(exc, BodyTooLarge):
            return too_large
        if response is not None and response.prepared:
            raise
        log.warning("upstream unavailable", url=url, error=str(exc))
        return style.error(502, "Upstream service unavailable")


def _cause_is(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
