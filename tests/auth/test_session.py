"""Signing in through the gateway: tokens, wrong credentials, rate limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import jwt
import pytest

from services.auth.app import create_app as create_auth_app
from services.auth.settings import AuthSettings
from services.gateway.app import create_app as create_gateway_app
from services.gateway.settings import GatewaySettings
from tests.conftest import make_user, register, serve, sign_in, unique_email

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
async def address_limited_gateway(make_settings: Callable[..., Any]) -> AsyncIterator[str]:
    """Auth allowing 3 attempts per client address, behind a gateway that trusts one
    proxy hop, so a test can speak for several client addresses."""
    auth_settings = make_settings(
        AuthSettings, auth_login_limit_per_address=3, mongo_db="kino_auth_address_limit"
    )
    async with serve(create_auth_app(auth_settings)) as auth_url:
        gateway_settings = make_settings(
            GatewaySettings, auth_url=auth_url, gateway_trusted_proxy_hops=1
        )
        async with serve(create_gateway_app(gateway_settings)) as url:
            yield url


async def test_login_attempts_per_client_address_are_limited(
    http: aiohttp.ClientSession, address_limited_gateway: str
) -> None:
    url = address_limited_gateway
    email = unique_email()
    assert (await register(http, url, email)).status == 201

    async def attempt(address: str) -> aiohttp.ClientResponse:
        return await http.post(
            f"{url}/api/v1/users/session",
            data={"email": unique_email(), "password": "whatever1"},
            headers={"X-Forwarded-For": address},
        )

    statuses = [(await attempt("203.0.113.7")).status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    limited = await attempt("203.0.113.7")
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    # A different client address still gets through.
    response = await http.post(
        f"{url}/api/v1/users/session",
        data={"email": email, "password": "correct horse battery"},
        headers={"X-Forwarded-For": "198.51.100.9"},
    )
    assert response.status == 201
