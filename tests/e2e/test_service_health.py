"""Every service answers /health, /ready (its dependencies) and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devstack.mongo_server import run_secantusdb
from devstack.ports import free_port
from devstack.services import RunningServices
from services.catalog.app import create_app as create_catalog_app
from services.catalog.settings import CatalogSettings
from tests.conftest import serve
from tests.polling import eventually

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
    base = stack.admin_urls[service]
    async with http.get(f"{base}/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    async with http.get(f"{base}/ready") as response:
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "ready"
        assert body["checks"] == dict.fromkeys(EXPECTED_CHECKS[service], True)
    # Requests are counted on the service's own port: the gateway's public port, where
    # /health_check is (the probes of its admin port are not counted).
    metered = "/health_check" if service == "gateway" else "/ready"
    async with http.get(f"{stack.urls[service]}{metered}") as response:
        assert response.status == 200
    async with http.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
        assert f'http_requests_total{{method="GET",route="{metered}",status="200"}}' in text
        assert "http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
async def test_the_gateways_public_port_does_not_serve_internal_endpoints(
    http: aiohttp.ClientSession, stack: RunningServices, path: str
) -> None:
    async with http.get(f"{stack.gateway_url}{path}") as response:
        assert response.status == 404
        assert await response.json() == {"detail": "Not Found"}
    async with http.get(f"{stack.admin_urls['gateway']}{path}") as response:
        assert response.status == 200


async def test_the_admin_port_counts_the_public_ports_requests(
    http: aiohttp.ClientSession, stack: RunningServices
) -> None:
    async with http.get(f"{stack.gateway_url}/health_check") as response:
        assert response.status == 200  # the seed's health check stays public
        assert await response.json() == {}
    async with http.get(f"{stack.admin_urls['gateway']}/metrics") as response:
        text = await response.text()
    assert 'http_requests_total{method="GET",route="/health_check",status="200"}' in text
    # The admin port serves only those three routes.
    async with http.get(f"{stack.admin_urls['gateway']}/health_check") as response:
        assert response.status == 404


async def test_ready_reports_a_store_that_went_down(
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Any],
    namespace: str,
    amqp_cleanup: list[str],
    tmp_path: Path,
) -> None:
    """A catalog on a MongoDB of its own; the test stops that MongoDB under it."""
    mongo = contextlib.ExitStack()
    mongo_url = mongo.enter_context(
        run_secantusdb(port=free_port(), storage=None, log_path=tmp_path / "mongo.log")
    ).url
    # Its own queues on its own exchange: it must neither compete with the stack's
    # catalog for events nor get copies of the stack's results (its webhook and event
    # log consumers would then work against the MongoDB this test stops).
    prefix = f"{namespace}-outage"
    names = ("users", "video-results", "storage-events", "trim-results", "webhook-events")
    for name in (*names, "event-log"):
        amqp_cleanup.extend(f"{prefix}.catalog.{name}{s}" for s in ("", ".retry", ".dlq"))
    settings = make_settings(
        CatalogSettings,
        mongo_url=mongo_url,
        amqp_exchange=f"kino.{prefix}",
        amqp_queue_prefix=prefix,
        storage_events_exchange=f"kino.storage.{prefix}",
    )
    try:
        async with serve(create_catalog_app(settings)) as url:
            async with http.get(f"{url}/ready") as response:
                assert response.status == 200
            await asyncio.to_thread(mongo.close)

            async def not_ready() -> dict[str, Any] | None:
                async with http.get(f"{url}/ready") as response:
                    return await response.json() if response.status == 503 else None

            body = await eventually(not_ready, within=20)
            assert body == {
                "status": "not ready",
                "checks": {"mongo": False, "storage": True, "broker": True},
            }
    finally:
        mongo.close()
