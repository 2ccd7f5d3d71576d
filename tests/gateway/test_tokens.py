"""Access tokens at the gateway: only tokens signed by auth's key pass, and a
refused token gets the 401 body of the surface it was sent to."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.auth.token_issuer import TokenIssuer, generate_private_key_pem
from tests.conftest import Account, make_user

HOSTING_PATH = "/video/my/"
TRIMMING_PATH = "/api/v1/users/requests"
HOSTING_401 = {"detail": "Not authenticated"}
TRIMMING_401 = {
    "errors": [{"detail": "Not authorized", "source": {}}],
    "jsonapi": {"version": "1.0"},
}


@pytest.fixture
async def account(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    return await make_user(http, gateway_url)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _sign(pem: str, claims: dict[str, Any], kid: str, algorithm: str = "EdDSA") -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})  # type: ignore[arg-type]


def _claims(sub: str, **changes: int) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 600, **changes}


async def _assert_refused(
    http: aiohttp.ClientSession, gateway_url: str, headers: dict[str, str]
) -> None:
    async with http.get(gateway_url + HOSTING_PATH, headers=headers) as response:
        assert response.status == 401
        assert response.content_type == "application/json"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await response.json() == HOSTING_401
    async with http.get(gateway_url + TRIMMING_PATH, headers=headers) as response:
        assert response.status == 401
        assert response.content_type == "application/vnd.api+json"
        assert await response.json(content_type=None) == TRIMMING_401


async def test_a_valid_token_reaches_the_service(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> None:
    async with http.get(gateway_url + HOSTING_PATH, headers=account.auth) as response:
        assert response.status == 200
        assert await response.json() == {"unprocessed_videos": [], "videos": []}
    async with http.get(gateway_url + TRIMMING_PATH, headers=account.auth) as response:
        assert response.status == 200
        assert await response.json(content_type=None) == {
            "data": [],
            "jsonapi": {"version": "1.0"},
        }


async def test_no_token(http: aiohttp.ClientSession, gateway_url: str) -> None:
    await _assert_refused(http, gateway_url, {})


async def test_token_scheme_instead_of_bearer(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> None:
    await _assert_refused(http, gateway_url, {"Authorization": "token"})
    await _assert_refused(http, gateway_url, {"Authorization": f"Token {account.token}"})


async def test_garbage_token(http: aiohttp.ClientSession, gateway_url: str) -> None:
    await _assert_refused(http, gateway_url, {"Authorization": "Bearer not.a.jwt"})
    await _assert_refused(http, gateway_url, {"Authorization": "Bearer "})


async def test_tampered_payload(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> None:
    header, _, signature = account.token.split(".")
    forged = _b64(_claims("000000000000000000000000"))
    await _assert_refused(
        http, gateway_url, {"Authorization": f"Bearer {header}.{forged}.{signature}"}
    )


async def test_alg_none(http: aiohttp.ClientSession, gateway_url: str, account: Account) -> None:
    kid = jwt.get_unverified_header(account.token)["kid"]
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64(_claims(account.id))}."
    await _assert_refused(http, gateway_url, {"Authorization": f"Bearer {unsigned}"})


async def test_expired_token(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, signing_key_pem: str
) -> None:
    kid = TokenIssuer(signing_key_pem, 60).kid
    now = int(time.time())
    expired = _sign(signing_key_pem, _claims(account.id, iat=now - 7200, exp=now - 3600), kid)
    await _assert_refused(http, gateway_url, {"Authorization": f"Bearer {expired}"})
    # The same key and claims, unexpired, pass: only the expiry made the difference.
    fresh = _sign(signing_key_pem, _claims(account.id), kid)
    async with http.get(
        gateway_url + HOSTING_PATH, headers={"Authorization": f"Bearer {fresh}"}
    ) as r:
        assert r.status == 200


async def test_token_signed_with_another_key(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, signing_key_pem: str
) -> None:
    other = generate_private_key_pem()
    real_kid = TokenIssuer(signing_key_pem, 60).kid
    for kid in (real_kid, TokenIssuer(other, 60).kid):
        token = _sign(other, _claims(account.id), kid)
        await _assert_refused(http, gateway_url, {"Authorization": f"Bearer {token}"})


async def test_hmac_token_keyed_with_the_public_key(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, signing_key_pem: str
) -> None:
    """Algorithm confusion: HS256 with the (public) JWKS `x` as the secret is refused."""
    issuer = TokenIssuer(signing_key_pem, 60)
    public_x = issuer.jwks()["keys"][0]["x"]
    token = jwt.encode(
        _claims(account.id), public_x, algorithm="HS256", headers={"kid": issuer.kid}
    )
    await _assert_refused(http, gateway_url, {"Authorization": f"Bearer {token}"})


async def test_public_hosting_routes_work_anonymously_but_refuse_bad_tokens(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    async with http.get(gateway_url + "/video/explore/") as response:
        assert response.status == 200  # served to an anonymous caller
        assert "videos" in await response.json()
    headers = {"Authorization": "Bearer not.a.jwt"}
    async with http.get(gateway_url + "/video/explore/", headers=headers) as response:
        assert response.status == 401
        assert await response.json() == HOSTING_401
