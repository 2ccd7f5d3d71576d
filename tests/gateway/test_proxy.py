"""The gateway's forwarding, against a real upstream HTTP server run by the test.

The upstream stands in for catalog so the test can see exactly what the gateway
forwards; it is a real aiohttp server on a loopback port, not a mock.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from devstack.services import RunningServices
from services.gateway.app import create_app as create_gateway_app
from services.gateway.settings import GatewaySettings
from shared.identity import IDENTITY_HEADER, Identity, IdentitySigner, IdentityVerifier
from tests.conftest import Account, make_user, serve

INTERNAL_SECRET = "kino-test-internal-secret-of-enough-length-1234"
BODY_LIMIT = 64 * 1024
UPLOAD_LIMIT = 256 * 1024


@dataclass
class Upstream:
    """What the test upstream saw."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    aborted_bodies: int = 0
    first_chunk_received: asyncio.Event = field(default_factory=asyncio.Event)
    client_got_first_chunk: asyncio.Event = field(default_factory=asyncio.Event)


def upstream_app(seen: Upstream) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except (aiohttp.ClientPayloadError, ConnectionResetError, asyncio.CancelledError):
            seen.aborted_bodies += 1
            raise
        seen.requests.append(
            {
                "headers": dict(request.headers),
                "body_length": len(body),
                "query": dict(request.query),
            }
        )
        return web.json_response({"ok": True}, status=501)

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async def trickle_in(request: web.Request) -> web.Response:
        first = await request.content.readany()
        seen.first_chunk_received.set()
        rest = await request.content.read()
        return web.json_response({"received": len(first) + len(rest)})

    async def trickle_out(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first-chunk;")
        await asyncio.wait_for(seen.client_got_first_chunk.wait(), 5)
        await response.write(b"rest")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/video/my/slow", slow)
    app.router.add_post("/api/v1/users/requests/trickle", trickle_in)
    app.router.add_get("/video/my/trickle", trickle_out)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    seen = Upstream()
    async with serve(upstream_app(seen)) as url:
        yield seen, url


@pytest.fixture
def gateway_to(
    make_settings: Callable[..., Any], stack: RunningServices
) -> Callable[[str], contextlib.AbstractAsyncContextManager[str]]:
    """A gateway in this process whose catalog is `catalog_url` and whose auth is the stack's."""

    def start(catalog_url: str) -> contextlib.AbstractAsyncContextManager[str]:
        settings = make_settings(
            GatewaySettings,
            auth_url=stack.urls["auth"],
            catalog_url=catalog_url,
            internal_secret=INTERNAL_SECRET,
            gateway_upstream_timeout_seconds=0.5,
            gateway_max_body_bytes=BODY_LIMIT,
            gateway_max_upload_bytes=UPLOAD_LIMIT,
        )
        return serve(create_gateway_app(settings))

    return start


@pytest.fixture
async def account(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    return await make_user(http, gateway_url)


async def test_client_identity_headers_are_replaced_by_the_gateways_assertion(
    http: aiohttp.ClientSession, upstream: tuple[Upstream, str], gateway_to: Any, account: Account
) -> None:
    seen, url = upstream
    forged = IdentitySigner("some-other-secret-that-is-long-enough-000").sign(Identity("attacker"))
    headers = {
        **account.auth,
        IDENTITY_HEADER: forged,
        "X-Kino-User-Id": "attacker",
        "X-User-Id": "attacker",
        "X-Forwarded-User": "attacker",
        "X-Forwarded-For": "10.9.8.7",
        "X-Request-Id": "client-chosen-request-id",
    }
    async with (
        gateway_to(url) as gateway,
        http.get(f"{gateway}/video/my/?a=1", headers=headers) as response,
    ):
        assert response.status == 501
        assert response.headers["X-Request-Id"] == "client-chosen-request-id"
    [forwarded] = seen.requests
    received = {k.lower(): v for k, v in forwarded["headers"].items()}
    identity = IdentityVerifier(INTERNAL_SECRET).verify(received[IDENTITY_HEADER.lower()])
    assert identity.user_id == account.id
    assert identity.client_address == "127.0.0.1"
    assert identity.request_id == "client-chosen-request-id"
    assert received["x-forwarded-for"] == "127.0.0.1"
    for dropped in ("x-kino-user-id", "x-user-id", "x-forwarded-user", "authorization"):
        assert dropped not in received
    assert forwarded["query"] == {"a": "1"}


async def test_anonymous_requests_carry_an_assertion_without_a_user(
    http: aiohttp.ClientSession, upstream: tuple[Upstream, str], gateway_to: Any
) -> None:
    seen, url = upstream
    async with gateway_to(url) as gateway, http.get(f"{gateway}/video/explore/") as response:
        assert response.status == 501
    identity = IdentityVerifier(INTERNAL_SECRET).verify(
        seen.requests[0]["headers"][IDENTITY_HEADER]
    )
    assert identity.user_id is None


async def test_internal_services_refuse_requests_the_gateway_did_not_vouch_for(
    http: aiohttp.ClientSession, stack: RunningServices, account: Account
) -> None:
    catalog = stack.urls["catalog"]
    attempts = [
        {},
        {IDENTITY_HEADER: "garbage"},
        {
            IDENTITY_HEADER: IdentitySigner("wrong-secret-but-long-enough-0123456789").sign(
                Identity(account.id)
            )
        },
        {"X-User-Id": account.id},
    ]
    for headers in attempts:
        async with http.get(f"{catalog}/video/my/", headers=headers) as response:
            assert response.status == 401
            assert await response.json() == {"detail": "Not authenticated"}
        async with http.get(f"{catalog}/api/v1/users/requests", headers=headers) as response:
            assert response.status == 401
            body = await response.json(content_type=None)
            assert body["errors"][0]["detail"] == "Not authorized"


async def test_upstream_down_is_502_in_the_surface_style(
    http: aiohttp.ClientSession, gateway_to: Any, account: Account
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with gateway_to(f"http://127.0.0.1:{closed_port}") as gateway:
        async with http.get(f"{gateway}/video/explore/") as response:
            assert response.status == 502
            assert await response.json() == {"detail": "Upstream service unavailable"}
        async with http.get(f"{gateway}/api/v1/users/requests", headers=account.auth) as response:
            assert response.status == 502
            assert response.content_type == "application/vnd.api+json"
            body = await response.json(content_type=None)
            assert body["errors"][0]["detail"] == "Upstream service unavailable"


async def test_upstream_timeout_is_504(
    http: aiohttp.ClientSession, upstream: tuple[Upstream, str], gateway_to: Any, account: Account
) -> None:
    _, url = upstream
    async with (
        gateway_to(url) as gateway,
        http.get(f"{gateway}/video/my/slow", headers=account.auth) as response,
    ):
        assert response.status == 504
        assert await response.json() == {"detail": "Upstream service timed out"}


async def test_declared_oversize_body_is_413_without_reaching_the_upstream(
    http: aiohttp.ClientSession, upstream: tuple[Upstream, str], gateway_to: Any, account: Account
) -> None:
    seen, url = upstream
    async with gateway_to(url) as gateway:
        async with http.put(
            f"{gateway}/video/my/abc", data=b"x" * (BODY_LIMIT + 1), headers=account.auth
        ) as response:
            assert response.status == 413
            assert (await response.json())["detail"].startswith("Request body exceeds")
        # At the limit exactly, it goes through.
        async with http.put(
            f"{gateway}/video/my/abc", data=b"x" * BODY_LIMIT, headers=account.auth
        ) as response:
            assert response.status == 501
    assert [r["body_length"] for r in seen.requests] == [BODY_LIMIT]


async def test_streamed_oversize_body_is_413_and_never_arrives_complete(
    http: aiohttp.ClientSession, upstream: tuple[Upstream, str], gateway_to: Any, account: Account
) -> None:
    seen, url = upstream

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
        for _ in range(UPLOAD_LIMIT // 16384 + 4):
            yield b"y" * 16384

    async with (
        gateway_to(url) as gateway,
        http.post(
            f"{gateway}/api/v1/users/videos", data=chunks(), headers=account.auth
        ) as response,
    ):
        assert response.status == 413
        assert response.content_type == "application/vnd.api+json"
    assert seen.requests == []  # the upstream never saw a complete body


async def test_uploads_have_their_own_larger_limit(
    http: aiohttp.ClientSession, upstream: tuple[Upstream, str], gateway_to: Any, account: Account
) -> None:
    seen, url = upstream
    size = BODY_LIMIT * 2  # over the ordinary limit, within the upload limit
    async with (
        gateway_to(url) as gateway,
        http.post(
            f"{gateway}/api/v1/users/videos", data=b"z" * size, headers=account.auth
        ) as response,
    ):
        assert response.status == 501
    assert [r["body_length"] for r in seen.requests] == [size]


async def test_request_body_is_streamed_not_buffered(
    http: aiohttp.ClientSession, upstream: tuple[Upstream, str], gateway_to: Any, account: Account
) -> None:
    """The upstream gets the first chunk while the client still holds back the rest."""
    seen, url = upstream

    async def body() -> AsyncIterator[bytes]:
        yield b"a" * 1000
        await asyncio.wait_for(seen.first_chunk_received.wait(), 5)
        yield b"b" * 1000

    async with (
        gateway_to(url) as gateway,
        http.post(
            f"{gateway}/api/v1/users/requests/trickle", data=body(), headers=account.auth
        ) as response,
    ):
        assert response.status == 200
        assert await response.json() == {"received": 2000}


async def test_response_body_is_streamed_not_buffered(
    http: aiohttp.ClientSession, upstream: tuple[Upstream, str], gateway_to: Any, account: Account
) -> None:
    """The client reads the first chunk while the upstream still holds back the rest."""
    seen, url = upstream
    async with (
        gateway_to(url) as gateway,
        http.get(f"{gateway}/video/my/trickle", headers=account.auth) as response,
    ):
        first = await asyncio.wait_for(response.content.readexactly(len(b"first-chunk;")), 5)
        assert first == b"first-chunk;"
        seen.client_got_first_chunk.set()
        assert await response.read() == b"rest"


async def test_unknown_paths_are_404_in_the_surface_style(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    async with http.get(f"{gateway_url}/no/such/thing") as response:
        assert response.status == 404
        assert await response.json() == {"detail": "Not Found"}


async def test_health_check_and_root_redirect(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    async with http.get(f"{gateway_url}/health_check") as response:
        assert response.status == 200
        assert await response.json() == {}
    async with http.get(f"{gateway_url}/", allow_redirects=False) as response:
        assert response.status == 307
        assert response.headers["Location"] == "/health_check"
    async with http.get(f"{gateway_url}/") as response:
        assert response.status == 200
        assert await response.json() == {}
