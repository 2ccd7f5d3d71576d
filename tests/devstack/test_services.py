"""The service supervisor, exercised with stand-in services."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from devstack.errors import PortInUse, ServiceFailed
from devstack.ports import SERVICE_NAMES, ServicePorts, port_is_free
from devstack.services import start_services
from tests.devstack.stand_in_service import commands

STORE_ENV = {
    "KINO_MONGO_URL": "mongodb://127.0.0.1:1",
    "KINO_AMQP_URL": "amqp://guest:guest@127.0.0.1:2/",
    "KINO_S3_ENDPOINT": "http://127.0.0.1:3",
    "KINO_S3_ACCESS_KEY": "kinodev",
    "KINO_S3_SECRET_KEY": "kino-dev-s3-secret",
}


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: dict[str, object] = json.load(response)
        return body


def test_services_start_in_order_with_their_settings(run_dir: Path) -> None:
    extras = {"KINO_AMQP_QUEUE_PREFIX": "test-1", "KINO_ENV": "development"}
    ports = ServicePorts.dynamic()

    with start_services({**STORE_ENV, **extras}, run_dir, ports, commands()) as running:
        assert running.gateway_url == f"http://127.0.0.1:{ports.gateway}"
        assert list(running.urls) == list(SERVICE_NAMES)
        started_at = [running.processes[name].popen.pid for name in SERVICE_NAMES]
        pids = {p.pid: p.create_time() for p in map(psutil.Process, started_at)}
        creation_order = sorted(pids, key=pids.__getitem__)
        gateway_env = get_json(f"{running.gateway_url}/env")
        auth_env = get_json(f"{running.urls['auth']}/env")

    assert creation_order == started_at
    assert gateway_env == {
        **STORE_ENV,
        **extras,
        "KINO_HTTP_HOST": "127.0.0.1",
        "KINO_HTTP_PORT": str(ports.gateway),
        "KINO_GATEWAY_ADMIN_PORT": str(ports.gateway_admin),
        "KINO_AUTH_URL": f"http://127.0.0.1:{ports.auth}",
        "KINO_CATALOG_URL": f"http://127.0.0.1:{ports.catalog}",
    }
    assert auth_env["KINO_HTTP_PORT"] == str(ports.auth)
    assert "KINO_GATEWAY_ADMIN_PORT" not in auth_env
    assert all(port_is_free(port) for port in ports.by_name().values())
    assert not any(psutil.pid_exists(pid) for pid in started_at)
    assert "stand-in starting" in (run_dir / "logs" / "gateway.log").read_text()


def test_a_service_that_exits_fails_fast_with_its_log(run_dir: Path) -> None:
    ports = ServicePorts.dynamic()
    broken = commands(catalog=["--exit-at-once"])
    started = time.monotonic()

    with pytest.raises(ServiceFailed) as raised, start_services(STORE_ENV, run_dir, ports, broken):
        pass

    assert time.monotonic() - started < 10
    message = raised.value.message
    assert "catalog exited with code 3" in message
    assert "stand-in: refusing to start" in message
    assert port_is_free(ports.auth), "auth, started before catalog, is stopped again"


def test_a_service_ignoring_sigterm_is_killed_with_its_helpers(run_dir: Path) -> None:
    stubborn = commands(transcoder=["--ignore-sigterm", "--spawn-child"])

    with start_services(STORE_ENV, run_dir, None, stubborn, stop_grace=0.5) as running:
        transcoder = running.processes["transcoder"]
        child = get_json(f"{running.urls['transcoder']}/child")["pid"]
        assert isinstance(child, int)
        assert psutil.pid_exists(child)

    assert transcoder.popen.returncode == -9
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


def test_a_service_port_in_use_is_named(run_dir: Path, held_port: int) -> None:
    ports = replace(ServicePorts.dynamic(exclude=[held_port]), catalog=held_port)

    with (
        pytest.raises(
            PortInUse,
            match=f"port {held_port} needed by the catalog service.*KINO_DEV_PORT_CATALOG",
        ),
        start_services(STORE_ENV, run_dir, ports, commands()),
    ):
        pass

    assert not (run_dir / "logs").exists()


def test_a_service_not_ready_in_time_is_reported(run_dir: Path) -> None:
    never_ready = {**commands(), "auth": ["sleep", "30"]}

    with (
        pytest.raises(ServiceFailed, match="the auth service not ready after 1 s"),
        start_services(STORE_ENV, run_dir, None, never_ready, ready_timeout=1.0),
    ):
        pass
