"""Signing in through the gateway: tokens, wrong credentials, rate limits."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import jwt
import pytest

from services.auth.app import create_app as create_auth_app
from services.auth.settings import AuthSettings
from services.gateway.app import create_app as create_gateway_app
from services.gateway.settings import GatewaySettings
from tests.conftest import PASSWORD, make_user, register, serve, sign_in, unique_email

JSONAPI = "application/vnd.api+json"


async def test_sign_in_issues_an_eddsa_token_for_the_user(
    http: aiohttp.ClientSession, gateway_url: str, stack: Any
) -> None:
    email = unique_email()
    registered = await register(http, gateway_url, email)
    user_id = (await registered.json(content_type=None))["data"]["id"]
    response = await sign_in(http, gateway_url, email.upper())
    assert response.status == 201
    assert response.content_type == JSONAPI
    body = await response.json(content_type=None)
    assert body["data"]["type"] == "tokens"
    assert body["jsonapi"] == {"version": "1.0"}
    # The seed shows the issue time as the id: "2019-07-25 18:33:54 UTC".
    assert time.strptime(body["data"]["id"], "%Y-%m-%d %H:%M:%S UTC")
    token = body["data"]["attributes"]["access"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"]
    async with http.get(f"{stack.urls['auth']}/.well-known/jwks.json") as jwks:
        keys = {k["kid"]: k for k in (await jwks.json())["keys"]}
    claims = jwt.decode(token, jwt.PyJWK(keys[header["kid"]]).key, algorithms=["EdDSA"])
    assert claims["sub"] == user_id
    assert claims["exp"] > claims["iat"] >= int(time.time()) - 60


async def test_wrong_password_and_unknown_email_look_the_same(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    account = await make_user(http, gateway_url)
    wrong = await sign_in(http, gateway_url, account.email, "not the password")
    unknown = await sign_in(http, gateway_url, unique_email(), "not the password")
    assert wrong.status == unknown.status == 401
    assert wrong.content_type == unknown.content_type == JSONAPI
    assert await wrong.json(content_type=None) == await unknown.json(content_type=None)
    assert (await wrong.json(content_type=None))["errors"][0]["detail"] == (
        "Invalid email or password"
    )


async def test_missing_credentials_are_422(http: aiohttp.ClientSession, gateway_url: str) -> None:
    response = await http.post(f"{gateway_url}/api/v1/users/session", data={"email": ""})
    assert response.status == 422
    pointers = {e["source"]["pointer"] for e in (await response.json(content_type=None))["errors"]}
    assert pointers == {"/data/attributes/email", "/data/attributes/password"}


async def test_failed_logins_per_email_are_limited(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    """The session's auth allows 3 failures per email per window (see `service_env`)."""
    account = await make_user(http, gateway_url)
    for _ in range(3):
        assert (await sign_in(http, gateway_url, account.email, "wrong password")).status == 401
    limited = await sign_in(http, gateway_url, account.email)  # even the right password
    assert limited.status == 429
    assert limited.content_type == JSONAPI
    assert 1 <= int(limited.headers["Retry-After"]) <= 300
    body = await limited.json(content_type=None)
    assert body["errors"][0]["detail"] == "Too many login attempts, try again later"
    # Another account is not affected.
    other = await make_user(http, gateway_url)
    assert (await sign_in(http, gateway_url, other.email)).status == 201


@pytest.fixture
async def gateway_with_limits(
    make_settings: Callable[..., Any],
) -> AsyncIterator[Callable[[int, int], Any]]:
    """Starts auth with the given sign-in limits (failures per address, per email) behind
    a gateway that trusts one proxy hop, so a test can speak for client addresses."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(per_address: int, per_email: int) -> str:
            auth_settings = make_settings(
                AuthSettings,
                auth_login_limit_per_address=per_address,
                auth_login_limit_per_email=per_email,
                mongo_db=f"kino_auth_limits_{uuid.uuid4().hex[:8]}",
            )
            auth_url = await stack.enter_async_context(serve(create_auth_app(auth_settings)))
            gateway_settings = make_settings(
                GatewaySettings, auth_url=auth_url, gateway_trusted_proxy_hops=1
            )
            return await stack.enter_async_context(serve(create_gateway_app(gateway_settings)))

        yield start


async def _sign_in_from(
    http: aiohttp.ClientSession, url: str, address: str, email: str, password: str = PASSWORD
) -> aiohttp.ClientResponse:
    return await http.post(
        f"{url}/api/v1/users/session",
        data={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )


async def test_failed_logins_per_client_address_are_limited(
    http: aiohttp.ClientSession, gateway_with_limits: Callable[[int, int], Any]
) -> None:
    url = await gateway_with_limits(3, 5)
    email = unique_email()
    assert (await register(http, url, email)).status == 201

    statuses = [
        (await _sign_in_from(http, url, "203.0.113.7", unique_email(), "whatever1")).status
        for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    limited = await _sign_in_from(http, url, "203.0.113.7", email)
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    # A different client address still gets through.
    assert (await _sign_in_from(http, url, "198.51.100.9", email)).status == 201


async def test_forty_people_behind_one_address_all_sign_in(
    http: aiohttp.ClientSession, gateway_with_limits: Callable[[int, int], Any]
) -> None:
    """An office behind one NAT address: successful sign-ins are not limited, even far
    past the limit on failures (the defaults: 30 per address, 5 per email)."""
    url = await gateway_with_limits(30, 5)
    emails = [unique_email("office") for _ in range(40)]
    registered = await asyncio.gather(*(register(http, url, email) for email in emails))
    assert [r.status for r in registered] == [201] * 40
    signed_in = await asyncio.gather(
        *(_sign_in_from(http, url, "192.0.2.10", email) for email in emails)
    )
    assert [r.status for r in signed_in] == [201] * 40
    # Signing in again, one after the other, is just as free.
    again = [(await _sign_in_from(http, url, "192.0.2.10", email)).status for email in emails]
    assert again == [201] * 40


async def test_six_wrong_passwords_for_one_email_give_429(
    http: aiohttp.ClientSession, gateway_with_limits: Callable[[int, int], Any]
) -> None:
    url = await gateway_with_limits(30, 5)
    email = unique_email()
    assert (await register(http, url, email)).status == 201
    statuses = []
    for attempt in range(6):
        # From a new address each time: the email's own limit stops the guessing.
        response = await _sign_in_from(http, url, f"198.51.100.{attempt}", email, "guess 1234")
        statuses.append(response.status)
    assert statuses == [401] * 5 + [429]
    assert 1 <= int(response.headers["Retry-After"]) <= 300
    body = await response.json(content_type=None)
    assert body["errors"][0]["detail"] == "Too many login attempts, try again later"


async def test_concurrent_guesses_cannot_pass_the_email_limit(
    http: aiohttp.ClientSession, gateway_with_limits: Callable[[int, int], Any]
) -> None:
    url = await gateway_with_limits(1000, 5)
    email = unique_email()
    assert (await register(http, url, email)).status == 201
    responses = await asyncio.gather(
        *(_sign_in_from(http, url, "198.51.100.77", email, f"guess {n:04}") for n in range(20))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [401] * 5 + [429] * 15


@pytest.mark.parametrize(
    "password",
    ["p" * 73, "é" * 40, "p" * 1_000_000],
    ids=["73-bytes", "80-bytes-of-accents", "1-MB"],
)
async def test_passwords_longer_than_bcrypt_reads_are_wrong_passwords(
    http: aiohttp.ClientSession, gateway_url: str, password: str
) -> None:
    """No stored password is longer than 72 bytes (registration refuses them)."""
    account = await make_user(http, gateway_url)
    response = await sign_in(http, gateway_url, account.email, password)
    assert response.status == 401
    body = await response.json(content_type=None)
    assert body["errors"][0]["detail"] == "Invalid email or password"
