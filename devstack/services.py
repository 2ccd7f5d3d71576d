"""Supervisor of Kino's four services: start each, wait until it is ready, stop them all.

Each service runs as `python -m services.<name>` from the repository root, configured
only through `KINO_*` environment variables, exactly as in a container. Services
start one at a time (auth, catalog, transcoder, then the gateway, which calls the
others) and each must answer 200 on `/ready` before the next one starts, so a
failure points at one service and its log.

When their S3 store is a SeaweedFS the devstack runs, the bridge that announces its
uploads to catalog (`devstack.seaweedfs_events`, process `s3-events`) starts last,
with catalog's environment, and is watched and stopped like the services.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devstack.errors import ServiceFailed
from devstack.ports import LOOPBACK, SERVICE_NAMES, ServicePorts, check_ports_free, free_port
from devstack.probes import http_ok, wait_until
from devstack.processes import DEFAULT_STOP_GRACE, ManagedProcess, spawn, stop_all
from devstack.s3_server import embedded_filer
from devstack.seaweedfs_events import FILER_ENV
from devstack.seaweedfs_events import PROCESS_NAME as S3_EVENTS

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_command(name: str) -> list[str]:
    """How a service runs: its package's `__main__`, with this interpreter."""
    return [sys.executable, "-m", f"services.{name}"]


def service_environ(
    name: str, ports: ServicePorts, env: Mapping[str, str], base: Mapping[str, str]
) -> dict[str, str]:
    """The environment of one service.

    Layers, later ones winning: `base` (our own environment), the devstack defaults,
    the caller's `env` (store URLs, test extras such as `KINO_AMQP_QUEUE_PREFIX`), and
    last the service's own ports, which nothing may override since readiness is
    checked there.
    """
    by_name = ports.by_name()
    defaults = {
        "KINO_ENV": "development",
        "KINO_HTTP_HOST": LOOPBACK,
        "KINO_AUTH_URL": f"http://{LOOPBACK}:{ports.auth}",
        "KINO_CATALOG_URL": f"http://{LOOPBACK}:{ports.catalog}",
        "PYTHONUNBUFFERED": "1",  # log lines appear as they are written
    }
    own = {"KINO_HTTP_PORT": str(by_name[name])}
    if name == "gateway":
        own["KINO_GATEWAY_ADMIN_PORT"] = str(ports.gateway_admin)
    return {**base, **defaults, **env, **own}


@dataclass(frozen=True)
class ServiceLaunch:
    """How one service was started, so that it can be started again the same way."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    log_path: Path
    url: str
    #: Where it answers `/ready`: its own URL, the gateway's admin URL for the gateway.
    ready_url: str
    echo: bool = False

    def spawn(self, *, append: bool = False) -> ManagedProcess:
        """Start the service; `append` continues its log instead of starting it afresh."""
        return spawn(
            self.name,
            self.argv,
            log_path=self.log_path,
            env=self.env,
            cwd=REPO_ROOT,
            echo=self.echo,
            append=append,
        )


def s3_events_launch(catalog: ServiceLaunch, run_dir: Path) -> ServiceLaunch | None:
    """The SeaweedFS upload bridge for `catalog`'s store, or None when that store is not
    a SeaweedFS running here (then it has notifications of its own, or none).

    The bridge gets catalog's environment, so that it publishes for catalog's bucket to
    catalog's exchange on catalog's broker, and a free port of its own for `/ready`.
    """
    filer = embedded_filer(catalog.env.get("KINO_S3_ENDPOINT", ""))
    if filer is None:
        return None
    port = free_port()
    return ServiceLaunch(
        S3_EVENTS,
        (sys.executable, "-m", "devstack.seaweedfs_events"),
        {**catalog.env, "KINO_HTTP_PORT": str(port), FILER_ENV: filer},
        run_dir / "logs" / f"{S3_EVENTS}.log",
        f"http://{LOOPBACK}:{port}",
        f"http://{LOOPBACK}:{port}",
        catalog.echo,
    )


@dataclass(frozen=True)
class RunningServices:
    """The started services: their base URLs, processes and how they were started.

    `processes` is the live table: a supervisor that restarts a service replaces its
    entry, and stopping the services stops whatever process each entry holds then.
    `processes` and `launches` also hold the `s3-events` bridge when it runs; `urls`
    holds the four services only.
    """

    urls: dict[str, str]
    processes: dict[str, ManagedProcess]
    launches: dict[str, ServiceLaunch] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return self.urls["gateway"]

    @property
    def admin_urls(self) -> dict[str, str]:
        """Where each service serves `/health`, `/ready` and `/metrics`."""
        return {name: launch.ready_url for name, launch in self.launches.items()}

    def log_path(self, name: str) -> Path:
        return self.processes[name].log_path


@contextmanager
def start_services(
    env: Mapping[str, str],
    run_dir: Path,
    ports: ServicePorts | None = None,
    commands: Mapping[str, Sequence[str]] | None = None,
    *,
    echo: bool = False,
    ready_timeout: float = 60.0,
    stop_grace: float = DEFAULT_STOP_GRACE,
    base_environ: Mapping[str, str] | None = None,
) -> Iterator[RunningServices]:
    """Start the four services; stop them (SIGTERM, then SIGKILL) when the block ends.

    `env` is added to every service's environment (use `StoreEndpoints.service_env()`
    plus any extras). `ports=None` picks free ports. `commands` replaces the command
    line of some services (tests use stand-ins). Output goes to
    `run_dir/logs/<name>.log`, and with `echo` also to our stdout, prefixed.
    """
    if ports is None:
        ports = ServicePorts.dynamic()
    check_ports_free(ports.needs())
    commands = commands or {}
    base = base_environ if base_environ is not None else os.environ
    started: dict[str, ManagedProcess] = {}
    launches: dict[str, ServiceLaunch] = {}
    try:
        for name in SERVICE_NAMES:
            launches[name] = launch = ServiceLaunch(
                name,
                tuple(commands.get(name) or default_command(name)),
                service_environ(name, ports, env, base),
                run_dir / "logs" / f"{name}.log",
                _url(ports, name),
                f"http://{LOOPBACK}:{ports.ready_port(name)}",
                echo,
            )
            logger.info("starting the %s service on %s", name, launch.url)
            started[name] = launch.spawn()
            _wait_ready(started[name], launch.ready_url, ready_timeout)
        # Last: catalog has bound its queue to the exchange the bridge publishes to.
        if (bridge := s3_events_launch(launches["catalog"], run_dir)) is not None:
            launches[S3_EVENTS] = bridge
            logger.info("starting the SeaweedFS upload notifications (%s)", S3_EVENTS)
            started[S3_EVENTS] = bridge.spawn()
            _wait_ready(started[S3_EVENTS], bridge.ready_url, ready_timeout)
        # `started` itself, not a copy: a restarted service's process is the one to stop.
        urls = {name: _url(ports, name) for name in SERVICE_NAMES}
        yield RunningServices(urls, started, launches)
    finally:
        if started:
            logger.info("stopping the services")
        stop_all(reversed(list(started.values())), grace=stop_grace)


def _wait_ready(process: ManagedProcess, url: str, timeout: float) -> None:
    wait_until(
        lambda: http_ok(f"{url}/ready"),
        what=f"the {process.name} service",
        timeout=timeout,
        error=ServiceFailed,
        process=process,
    )


def _url(ports: ServicePorts, name: str) -> str:
    return f"http://{LOOPBACK}:{ports.by_name()[name]}"
