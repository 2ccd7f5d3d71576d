"""Streams a request to an upstream service and its response back, never buffering a body.

Headers are rebuilt, not passed through: hop-by-hop headers, `Authorization` (the
gateway has consumed it) and every client-sent identity header are dropped; the
gateway adds its signed identity assertion, the request id and forwarding headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

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
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lowered = name.lower()
        if lowered in _HOP_BY_HOP or lowered in _IDENTITY_HEADERS or lowered.startswith("x-kino-"):
            continue
        headers.add(name, value)
    headers[IDENTITY_HEADER] = forwarding.identity_assertion
    headers[REQUEST_ID_HEADER] = forwarding.request_id
    headers["X-Forwarded-For"] = forwarding.client_address
    headers["X-Forwarded-Host"] = forwarding.host
    headers["X-Forwarded-Proto"] = forwarding.scheme
    return headers


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
    """Proxy one request; 413 over the body limit, 502 upstream down, 504 upstream silent."""
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
