"""`python -m devstack` as `make run` uses it: a subprocess, stopped by a signal."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from devstack.__main__ import development_signing_key
from devstack.ports import PortPlan, ServicePorts, port_is_free
from devstack.services import REPO_ROOT
from services.auth.token_issuer import TokenIssuer

#: Runs the real entry point with stand-in services (the real ones are not needed to
#: test starting, stopping and signals).
MAIN_WITH_STAND_INS = (
    "import sys; from devstack.__main__ import main; "
    "from tests.devstack.stand_in_service import commands; sys.exit(main(commands()))"
)


def devstack_environ(run_dir: Path, **overrides: int) -> dict[str, str]:
    """Our environment with free ports for everything, embedded stores and `run_dir`."""
    environ = {
        k: v for k, v in os.environ.items() if k not in ("KINO_MONGO_URL", "KINO_S3_ENDPOINT")
    }
    stores = PortPlan.dynamic()
    services = ServicePorts.dynamic(exclude=[n.port for n in stores.seaweed_needs()])
    ports = {
        "KINO_DEV_PORT_MONGO": stores.mongo,
        "KINO_DEV_PORT_S3": stores.s3,
        "KINO_DEV_PORT_S3_MASTER": stores.s3_master,
        "KINO_DEV_PORT_S3_FILER": stores.s3_filer,
        "KINO_DEV_PORT_S3_VOLUME": stores.s3_volume,
        "KINO_DEV_PORT_S3_ADMIN": stores.s3_admin,
        "KINO_DEV_PORT_AMQP_DIST": stores.amqp_dist,
        **{ServicePorts.env_var(name): port for name, port in services.by_name().items()},
        **overrides,
    }
    environ.update({name: str(port) for name, port in ports.items()})
    environ["KINO_DEV_RUN_DIR"] = str(run_dir)
    return environ


@pytest.mark.parametrize("variable", ["KINO_DEV_PORT_MONGO", "KINO_DEV_PORT_GATEWAY"])
def test_a_port_in_use_exits_with_one_line(run_dir: Path, held_port: int, variable: str) -> None:
    environ = devstack_environ(run_dir, **{variable: held_port})

    result = subprocess.run(
        [sys.executable, "-m", "devstack"],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {held_port}" in lines[0]
    assert variable in lines[0]
    assert not (run_dir / "logs").exists(), "nothing was started"


def read_lines(process: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """The process's stdout, line by line, as it comes (the thread ends at EOF)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return lines, thread


def wait_for_line(lines: queue.Queue[str], prefix: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"no line starting with {prefix!r} in:\n{''.join(seen)}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_runs_until_a_signal_then_stops_everything(run_dir: Path, signum: signal.Signals) -> None:
    environ = devstack_environ(run_dir)
    gateway = environ["KINO_DEV_PORT_GATEWAY"]
    devstack = subprocess.Popen(
        [sys.executable, "-c", MAIN_WITH_STAND_INS],
        cwd=REPO_ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines, reader = read_lines(devstack)
        seen = wait_for_line(lines, "Kino is running:", timeout=60)
        children = psutil.Process(devstack.pid).children(recursive=True)

        devstack.send_signal(signum)
        devstack.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if devstack.poll() is None:
            devstack.kill()
    output = "".join(seen) + "".join(iter_queue(lines))
    errors = devstack.stderr.read() if devstack.stderr else ""

    assert seen[-1].strip() == f"Kino is running: http://127.0.0.1:{gateway}"
    assert devstack.returncode == 0, errors
    assert "Traceback" not in output + errors
    assert "Kino stopped." in output
    assert "gateway    | stand-in starting" in output
    assert len(children) >= 6  # SecantusDB, SeaweedFS and four services
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert all(
        port_is_free(int(environ[name])) for name in environ if name.startswith("KINO_DEV_PORT_")
    )
    assert (run_dir / "mongo").is_dir(), "data is kept in the run directory"


def test_a_killed_service_is_restarted_and_stopped_at_the_end(run_dir: Path) -> None:
    environ = devstack_environ(run_dir)
    catalog_port = environ["KINO_DEV_PORT_CATALOG"]
    devstack = subprocess.Popen(
        [sys.executable, "-c", MAIN_WITH_STAND_INS],
        cwd=REPO_ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines, reader = read_lines(devstack)
        wait_for_line(lines, "Kino is running:", timeout=60)
        (catalog,) = [
            child
            for child in psutil.Process(devstack.pid).children(recursive=True)
            if child.environ().get("KINO_HTTP_PORT") == catalog_port
        ]

        catalog.kill()
        seen = wait_for_line(lines, "devstack: catalog was killed by SIGKILL", timeout=30)
        seen += wait_for_line(lines, "devstack: catalog is ready again", timeout=30)
        children = psutil.Process(devstack.pid).children(recursive=True)
        alive = devstack.poll() is None
        devstack.send_signal(signal.SIGINT)
        devstack.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if devstack.poll() is None:
            devstack.kill()
    errors = devstack.stderr.read() if devstack.stderr else ""

    assert alive, errors
    (restart_line,) = [line for line in seen if "was killed" in line]
    assert "restarting it in 1 s" in restart_line
    assert str(run_dir / "logs" / "catalog.log") in restart_line
    assert catalog.pid not in [c.pid for c in children]
    assert devstack.returncode == 0, errors
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert port_is_free(int(catalog_port))


def iter_queue(lines: queue.Queue[str]) -> list[str]:
    rest: list[str] = []
    while not lines.empty():
        rest.append(lines.get_nowait())
    return rest


def test_make_run_keeps_one_signing_key_across_restarts(tmp_path: Path) -> None:
    first = development_signing_key({}, tmp_path)["KINO_AUTH_SIGNING_KEY"]
    again = development_signing_key({}, tmp_path)["KINO_AUTH_SIGNING_KEY"]
    assert first == again
    assert TokenIssuer(first, 60).kid  # a usable Ed25519 key
    assert (tmp_path / "auth-signing-key.pem").stat().st_mode & 0o777 == 0o600
    assert development_signing_key({"KINO_AUTH_SIGNING_KEY": "operator"}, tmp_path) == {}
