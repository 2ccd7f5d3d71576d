"""`python -m devstack` (what `make run` calls): Kino on this machine, until Ctrl-C.

Starts the stores the environment does not provide, then the four services (and, on
the embedded SeaweedFS, the bridge that announces its uploads to catalog:
`devstack.seaweedfs_events`), prints the gateway's URL and waits, restarting a
service that dies (see `devstack.supervisor`). Ctrl-C or SIGTERM stops the services,
then the stores started here, and nothing else. Data lives under `<repo>/.run/` (or
`KINO_DEV_RUN_DIR`) and survives restarts. Problems are reported in one line, not
as a traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from devstack.errors import DevstackError
from devstack.ports import PortPlan, ServicePorts, check_ports_free
from devstack.seaweedfs_events import PROCESS_NAME as S3_EVENTS
from devstack.services import REPO_ROOT, RunningServices, start_services
from devstack.stores import StoreEndpoints, StoreSettings, launch_stores, plan_stores
from devstack.supervisor import Supervisor
from services.auth.token_issuer import generate_private_key_pem

logger = logging.getLogger("devstack")

#: How often the running services are checked for one that died.
WATCH_INTERVAL = 0.5


class ShutdownRequested(BaseException):
    """Raised by the signal handler; a BaseException so no `except Exception` eats it."""


class ShutdownSignals:
    """Turns the first SIGINT/SIGTERM into `ShutdownRequested`; later ones only say
    "stopping", so that a second Ctrl-C cannot cut the cleanup short and orphan a
    store."""

    def __init__(self) -> None:
        self.received: str | None = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            print("devstack: already stopping, please wait", file=sys.stderr, flush=True)
            return
        self.received = signal.Signals(signum).name
        raise ShutdownRequested(self.received)


def main(commands: Mapping[str, Sequence[str]] | None = None) -> int:
    """Run Kino until a signal; returns the exit code. `commands` is for tests."""
    logging.basicConfig(level=logging.INFO, format="devstack: %(message)s", stream=sys.stdout)
    signals = ShutdownSignals()
    signals.install()
    try:
        run(os.environ, commands)
    except ShutdownRequested:
        print("Kino stopped.", flush=True)
        return 0
    except DevstackError as error:
        print(f"devstack: {error.message}", file=sys.stderr, flush=True)
        return 1
    return 0


def run(environ: Mapping[str, str], commands: Mapping[str, Sequence[str]] | None) -> None:
    """Check ports, start stores then services, and watch them until interrupted."""
    run_dir = Path(environ.get("KINO_DEV_RUN_DIR") or REPO_ROOT / ".run")
    service_ports = ServicePorts.from_environ(environ)
    plan = plan_stores(
        StoreSettings.from_environ(environ), PortPlan.from_environ(environ), ephemeral=False
    )
    check_ports_free(plan.port_needs() + service_ports.needs())
    with launch_stores(plan, run_dir) as stores:
        env = {**stores.service_env(), **development_signing_key(environ, run_dir)}
        with start_services(env, run_dir, service_ports, commands, echo=True) as running:
            print_banner(stores, running, run_dir)
            watch(running)


def development_signing_key(environ: Mapping[str, str], run_dir: Path) -> dict[str, str]:
    """Auth's token key for `make run`, kept in the run dir so tokens outlive a restart.

    An operator-provided `KINO_AUTH_SIGNING_KEY` wins and is left alone.
    """
    if environ.get("KINO_AUTH_SIGNING_KEY"):
        return {}
    path = run_dir / "auth-signing-key.pem"
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(generate_private_key_pem())
    return {"KINO_AUTH_SIGNING_KEY": path.read_text()}


def print_banner(stores: StoreEndpoints, running: RunningServices, run_dir: Path) -> None:
    uploads = (
        [f"  uploads  announced to catalog as they land ({S3_EVENTS}: SeaweedFS filer → AMQP)"]
        if S3_EVENTS in running.launches
        else []
    )
    lines = [
        f"Kino is running: {running.gateway_url}",
        *(f"  {line}" for line in stores.descriptions),
        *uploads,
        "  services " + ", ".join(f"{name} {url}" for name, url in running.urls.items()),
        f"  admin    {running.admin_urls['gateway']} (the gateway's /health, /ready, /metrics)",
        f"  logs     {run_dir / 'logs'}",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)


def watch(running: RunningServices) -> None:
    """Wait for a signal; a service that exits on its own meanwhile is restarted."""
    supervisor = Supervisor(running)
    while True:
        supervisor.check()
        time.sleep(WATCH_INTERVAL)


if __name__ == "__main__":
    sys.exit(main())
