"""Each service, started with the exact command and environment that docker compose
and its Kubernetes Deployment give it, becomes ready as a local process against
this session's embedded servers.

What must differ on this machine is overridden, and only that: where the stores are
(the session's SecantusDB/SeaweedFS/RabbitMQ with their development credentials, so
`KINO_ENV=development`; production mode is checked in `test_k8s_manifests.py` and
`test_compose.py` by building the settings), the listening address and port, the
peers' URLs, and names that keep this run's messages apart. `python` in a command
is this test's interpreter (the image's `python` is the virtualenv's).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.errors import ServiceFailed
from devstack.ports import free_port
from devstack.probes import http_ok, wait_until
from devstack.processes import spawn, stop_all
from devstack.services import REPO_ROOT, RunningServices
from devstack.stores import StoreEndpoints
from tests.deploy.compose_file import compose_commands, compose_environment
from tests.deploy.k8s_manifests import deployment_commands, deployment_environment

SERVICES = ("auth", "catalog", "transcoder", "gateway")
SOURCES: dict[str, tuple[Callable[[], dict[str, list[str]]], Callable[[str], dict[str, str]]]] = {
    "compose": (compose_commands, compose_environment),
    "kubernetes": (deployment_commands, deployment_environment),
}


def test_compose_and_kubernetes_run_the_same_commands() -> None:
    assert compose_commands() == deployment_commands()
    assert set(compose_commands()) == set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_the_deployed_command_becomes_ready(
    source: str,
    service: str,
    stores: StoreEndpoints,
    stack: RunningServices,
    signing_key_pem: str,
    amqp_cleanup: list[str],
    tmp_path: Path,
) -> None:
    commands, environment = SOURCES[source]
    argv = commands()[service]
    assert argv[0] == "python"
    deployed = environment(service)
    assert deployed["KINO_HTTP_HOST"] == "0.0.0.0"  # containers listen on every interface
    port = free_port()
    # The gateway answers /ready on its admin port only (the public one has no /ready).
    ready_port = free_port(exclude={port}) if service == "gateway" else port
    prefix = f"deployed-{uuid.uuid4().hex[:8]}"
    for name in (
        "users",
        "video-results",
        "storage-events",
        "trim-results",
        "jobs",
    ):
        for owner in ("catalog", "transcoder"):
            amqp_cleanup.extend(f"{prefix}.{owner}.{name}{s}" for s in ("", ".retry", ".dlq"))
    local = {
        "KINO_ENV": "development",
        "KINO_HTTP_HOST": "127.0.0.1",
        "KINO_HTTP_PORT": str(port),
        **({"KINO_GATEWAY_ADMIN_PORT": str(ready_port)} if service == "gateway" else {}),
        **stores.service_env(),
        "KINO_S3_PUBLIC_ENDPOINT": stores.s3_endpoint,
        "KINO_AMQP_EXCHANGE": f"kino.{prefix}",
        "KINO_AMQP_QUEUE_PREFIX": prefix,
        "KINO_STORAGE_EVENTS_EXCHANGE": f"kino.storage.{prefix}",
        "KINO_AUTH_URL": stack.urls["auth"],
        "KINO_CATALOG_URL": stack.urls["catalog"],
        "KINO_AUTH_SIGNING_KEY": signing_key_pem,
        "KINO_WORK_DIR": str(tmp_path),
    }
    process = spawn(
        f"{source}-{service}",
        [sys.executable, *argv[1:]],
        log_path=tmp_path / "service.log",
        env={**os.environ, **deployed, **local},
        cwd=REPO_ROOT,
    )
    try:
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{ready_port}/ready"),
            what=f"{service} as {source} runs it",
            timeout=60,
            error=ServiceFailed,
            process=process,
        )
    finally:
        stop_all([process], grace=10)
    assert process.popen.returncode == 0  # a clean exit on SIGTERM
