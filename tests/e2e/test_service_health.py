"""Every service answers /health, /ready (its dependencies) and /metrics."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from devstack.services import RunningServices
from services.catalog.app import create_app as create_catalog_app
from services.catalog.settings import CatalogSettings
from tests.conftest import serve

EXPECTED_CHECKS = {
    "gateway": {"auth-keys", "catalog"},
    "auth": {"mongo", "broker"},
    "catalog": {"mongo", "storage", "broker"},
    "transcoder": {"storage", "broker"},
}


@pytest.mark.parametrize("service", sorted(EXPECTED_CHECKS))
async def test_health_ready_and_metrics(
    http: aiohttp.ClientSession, stack: RunningServices, service: str
) -> None:
    base = stack.urls[service]
    async with http.get(f"{base}/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    async with http.get(f"{base}/ready") as response:
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "ready"
        assert body["checks"] == dict.fromkeys(EXPECTED_CHECKS[service], True)
    async with http.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
        assert 'http_requests_total{method="GET",route="/ready",status="200"}' in text
        assert "http_request_duration_seconds_bucket" in text


async def test_ready_reports_an_unreachable_store(
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Any],
    namespace: str,
    amqp_cleanup: list[str],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    # Its own queue prefix: it must not compete with the stack's catalog for events.
    prefix = f"{namespace}-unready"
    amqp_cleanup.extend(f"{prefix}.catalog.users{suffix}" for suffix in ("", ".retry", ".dlq"))
    settings = make_settings(
        CatalogSettings,
        mongo_url=f"mongodb://127.0.0.1:{closed_port}",
        amqp_queue_prefix=prefix,
    )
    async with serve(create_catalog_app(settings)) as url, http.get(f"{url}/ready") as response:
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "not ready"
        assert body["checks"] == {"mongo": False, "storage": True, "broker": True}
