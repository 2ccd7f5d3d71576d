"""The gateway caches auth's JWKS and refetches it when a token names an unknown key."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from devstack.ports import free_port
from devstack.services import RunningServices
from services.auth.app import create_app as create_auth_app
from services.auth.settings import AuthSettings
from services.auth.token_issuer import generate_private_key_pem
from services.gateway.app import create_app as create_gateway_app
from services.gateway.settings import GatewaySettings
from tests.conftest import register, serve, sign_in, unique_email

JWKS_FETCHES = re.compile(
    r'http_requests_total\{method="GET",route="/.well-known/jwks.json",status="200"\} (\d+)'
)


async def _jwks_fetches(http: aiohttp.ClientSession, auth_url: str) -> int:
    async with http.get(f"{auth_url}/metrics") as response:
        match = JWKS_FETCHES.search(await response.text())
    return int(float(match.group(1))) if match else 0


async def _token(http: aiohttp.ClientSession, gateway: str, email: str) -> str:
    response = await sign_in(http, gateway, email)
    assert response.status == 201
    return str((await response.json(content_type=None))["data"]["attributes"]["access"])


async def test_keys_are_cached_and_refetched_after_rotation(
    http: aiohttp.ClientSession, make_settings: Callable[..., Any], stack: RunningServices
) -> None:
    port = free_port()
    auth_url = f"http://127.0.0.1:{port}"
    gateway_settings = make_settings(
        GatewaySettings,
        auth_url=auth_url,
        catalog_url=stack.urls["catalog"],
        gateway_jwks_min_refresh_seconds=0,
    )

    def auth_server(pem: str) -> TestServer:
        settings = make_settings(AuthSettings, auth_signing_key=pem, mongo_db="kino_auth_rotation")
        return TestServer(create_auth_app(settings), host="127.0.0.1", port=port)

    email = unique_email()
    async with serve(create_gateway_app(gateway_settings)) as gateway:
        first_auth = auth_server(generate_private_key_pem())
        await first_auth.start_server()
        try:
            assert (await register(http, gateway, email)).status == 201
            old_token = await _token(http, gateway, email)
            for _ in range(5):
                async with http.get(
                    f"{gateway}/video/my/", headers={"Authorization": f"Bearer {old_token}"}
                ) as response:
                    assert response.status == 200  # accepted, catalog reached
            assert await _jwks_fetches(http, auth_url) == 1  # cached after the first use
        finally:
            await first_auth.close()

        rotated_auth = auth_server(generate_private_key_pem())
        await rotated_auth.start_server()
        try:
            new_token = await _token(http, gateway, email)
            async with http.get(
                f"{gateway}/video/my/", headers={"Authorization": f"Bearer {new_token}"}
            ) as response:
                assert response.status == 200  # catalog reached: unknown kid → refetched → accepted
            assert await _jwks_fetches(http, auth_url) == 1  # the new auth served one fetch
            async with http.get(
                f"{gateway}/video/my/", headers={"Authorization": f"Bearer {old_token}"}
            ) as response:
                assert response.status == 401  # the retired key is gone from the set
        finally:
            await rotated_auth.close()
