"""Registration through the gateway, as seed 004 shows it."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from devstack.stores import StoreEndpoints
from tests.conftest import PASSWORD, register, unique_email
from tests.polling import eventually

JSONAPI = "application/vnd.api+json"


def _pointers(body: dict[str, object]) -> dict[str, str]:
    errors = body["errors"]
    assert isinstance(errors, list)
    return {e["source"]["pointer"]: e["detail"] for e in errors}


async def test_registration_returns_the_user_document(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    email = unique_email()
    response = await register(http, gateway_url, email)
    assert response.status == 201
    assert response.content_type == JSONAPI
    body = await response.json(content_type=None)
    assert body == {
        "data": {"id": body["data"]["id"], "type": "users", "attributes": {"email": email}},
        "jsonapi": {"version": "1.0"},
    }
    assert len(body["data"]["id"]) == 24


async def test_registration_accepts_json_and_jsonapi_bodies(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    flat = unique_email()
    fields = {"password": PASSWORD, "password_confirmation": PASSWORD}
    response = await http.post(
        f"{gateway_url}/api/v1/users/registration", json={"email": flat, **fields}
    )
    assert response.status == 201
    assert (await response.json(content_type=None))["data"]["attributes"]["email"] == flat

    nested = unique_email()
    document = {"data": {"type": "users", "attributes": {"email": nested, **fields}}}
    response = await http.post(
        f"{gateway_url}/api/v1/users/registration",
        data=aiohttp.JsonPayload(document, content_type=JSONAPI),
    )
    assert response.status == 201
    assert (await response.json(content_type=None))["data"]["attributes"]["email"] == nested


async def test_duplicate_email_is_refused_case_insensitively(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    email = unique_email()
    assert (await register(http, gateway_url, email)).status == 201
    response = await register(http, gateway_url, email.upper())
    assert response.status == 422
    assert response.content_type == JSONAPI
    assert _pointers(await response.json(content_type=None)) == {
        "/data/attributes/email": "Email has already been taken"
    }


async def test_concurrent_registrations_of_one_email_create_one_user(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    email = unique_email()
    responses = await asyncio.gather(*(register(http, gateway_url, email) for _ in range(6)))
    assert sorted(r.status for r in responses) == [201] + [422] * 5


async def test_password_confirmation_mismatch(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    response = await http.post(
        f"{gateway_url}/api/v1/users/registration",
        data={"email": unique_email(), "password": PASSWORD, "password_confirmation": "other pw!"},
    )
    assert response.status == 422
    assert _pointers(await response.json(content_type=None)) == {
        "/data/attributes/password_confirmation": "Password confirmation doesn't match Password"
    }


async def test_invalid_email_and_short_password(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    response = await http.post(
        f"{gateway_url}/api/v1/users/registration",
        data={"email": "not-an-email", "password": "short", "password_confirmation": "short"},
    )
    assert response.status == 422
    assert _pointers(await response.json(content_type=None)) == {
        "/data/attributes/email": "Email is invalid",
        "/data/attributes/password": "Password is too short (minimum is 8 characters)",
    }


@pytest.mark.parametrize(
    ("password", "why"),
    [("p" * 73, "73 ASCII bytes"), ("é" * 40, "40 characters, 80 bytes")],
)
async def test_passwords_bcrypt_cannot_read_are_refused(
    http: aiohttp.ClientSession, gateway_url: str, password: str, why: str
) -> None:
    response = await http.post(
        f"{gateway_url}/api/v1/users/registration",
        data={"email": unique_email(), "password": password, "password_confirmation": password},
    )
    assert response.status == 422, why
    assert _pointers(await response.json(content_type=None)) == {
        "/data/attributes/password": "Password is too long (maximum is 72 bytes)"
    }


@pytest.mark.parametrize("email", ["a\x00b@example.org", "ab@exa\x00mple.org", "a\x07@b.org"])
async def test_emails_with_control_characters_are_invalid(
    http: aiohttp.ClientSession, gateway_url: str, email: str
) -> None:
    response = await http.post(
        f"{gateway_url}/api/v1/users/registration",
        json={"email": email, "password": PASSWORD, "password_confirmation": PASSWORD},
    )
    assert response.status == 422
    assert _pointers(await response.json(content_type=None)) == {
        "/data/attributes/email": "Email is invalid"
    }


async def test_missing_fields_are_each_reported(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    response = await http.post(f"{gateway_url}/api/v1/users/registration", data={})
    assert response.status == 422
    assert _pointers(await response.json(content_type=None)) == {
        "/data/attributes/email": "Email can't be blank",
        "/data/attributes/password": "Password can't be blank",
        "/data/attributes/password_confirmation": "Password confirmation can't be blank",
    }


async def test_malformed_json_is_a_400(http: aiohttp.ClientSession, gateway_url: str) -> None:
    response = await http.post(
        f"{gateway_url}/api/v1/users/registration",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 400
    body = await response.json(content_type=None)
    assert body["errors"][0]["detail"] == "Request body is not valid JSON"


async def test_registration_stores_a_bcrypt_hash_and_tells_catalog(
    http: aiohttp.ClientSession, gateway_url: str, stores: StoreEndpoints
) -> None:
    email = unique_email()
    response = await register(http, gateway_url, email)
    user_id = (await response.json(content_type=None))["data"]["id"]
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(stores.mongo_url)
    try:
        stored = await client["kino_auth"]["users"].find_one({"email": email})
        assert stored is not None
        password_hash = stored["password_hash"]
        assert isinstance(password_hash, bytes)
        assert password_hash.startswith(b"$2b$12$")
        assert PASSWORD.encode() not in password_hash
        # user.registered reached catalog through the broker.
        catalog_users = client["kino_catalog"]["users"]
        assert await eventually(lambda: catalog_users.find_one({"_id": user_id}))
    finally:
        await client.close()
