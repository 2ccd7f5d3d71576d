"""`python -m shared.healthcheck`, the containers' health probe."""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import urlsplit

import pytest

from devstack.ports import free_port
from devstack.services import RunningServices


async def _probe(port: int, *args: str, admin_port: int | None = None) -> int:
    env = {**os.environ, "KINO_HTTP_PORT": str(port)}
    env.pop("KINO_GATEWAY_ADMIN_PORT", None)
    if admin_port is not None:
        env["KINO_GATEWAY_ADMIN_PORT"] = str(admin_port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.healthcheck", *args, env=env
    )
    return await process.wait()


@pytest.mark.parametrize("probe", ["ready", "health"])
async def test_a_ready_service_passes(stack: RunningServices, probe: str) -> None:
    port = urlsplit(stack.urls["catalog"]).port
    assert port is not None
    assert await _probe(port, probe) == 0


@pytest.mark.parametrize("probe", ["ready", "health"])
async def test_the_gateway_is_probed_on_its_admin_port(stack: RunningServices, probe: str) -> None:
    public = urlsplit(stack.gateway_url).port
    admin = urlsplit(stack.admin_urls["gateway"]).port
    assert public is not None
    assert admin is not None
    assert await _probe(public, probe) == 1  # the public port has no /ready
    assert await _probe(public, probe, admin_port=admin) == 0


async def test_nothing_listening_fails() -> None:
    assert await _probe(free_port()) == 1


async def test_an_unknown_probe_is_a_usage_error() -> None:
    assert await _probe(free_port(), "metrics") == 2
