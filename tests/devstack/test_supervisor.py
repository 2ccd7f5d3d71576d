"""Restarting a service that died, as `make run` does: real stand-in services, killed
with SIGKILL, and a clock the test moves instead of waiting out the backoff."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from devstack.ports import ServicePorts
from devstack.services import RunningServices, start_services
from devstack.supervisor import Backoff, RestartPolicy, Supervisor
from tests.devstack.stand_in_service import commands
from tests.devstack.test_services import STORE_ENV, get_json


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def check_until(supervisor: Supervisor, condition: Callable[[], bool], within: float = 30) -> None:
    """Run supervision rounds until `condition` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        supervisor.check()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def supervisor_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "devstack.supervisor"]


def crash_and_restart(
    running: RunningServices,
    supervisor: Supervisor,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> tuple[str, float]:
    """SIGKILL `name`; returns the supervisor's line about it and the delay it announced,
    once the service is back and ready."""
    dead = running.processes[name]
    before = len(supervisor_lines(caplog))
    os.kill(dead.pid, signal.SIGKILL)
    check_until(supervisor, lambda: len(supervisor_lines(caplog)) > before)
    line = supervisor_lines(caplog)[before]
    delay = float(line.split("restarting it in ")[1].split(" s")[0])
    clock.advance(delay - 0.01)
    supervisor.check()
    assert running.processes[name] is dead, "not restarted before its delay"
    clock.advance(0.01)
    check_until(supervisor, lambda: f"{name} is ready again" in supervisor_lines(caplog)[-1])
    assert running.processes[name].pid != dead.pid
    return line, delay


def test_backoff_doubles_up_to_the_cap_and_resets_after_a_stable_run() -> None:
    backoff = Backoff(RestartPolicy(first_delay=1, max_delay=30, stable_after=60))

    delays = [backoff.next_delay(uptime=2) for _ in range(7)]
    after_a_stable_run = backoff.next_delay(uptime=60)
    then = backoff.next_delay(uptime=59)

    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert (after_a_stable_run, then) == (1, 2)


def test_a_killed_service_comes_back_on_its_port_with_its_log(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.supervisor")
    clock = FakeClock()
    ports = ServicePorts.dynamic()
    with start_services(STORE_ENV, run_dir, ports, commands(catalog=["--spawn-child"])) as running:
        supervisor = Supervisor(running, clock=clock)
        url = running.urls["catalog"]
        env_before = get_json(f"{url}/env")
        first = running.processes["catalog"]
        helper = get_json(f"{url}/child")["pid"]
        assert isinstance(helper, int)
        clock.advance(5)

        line, _ = crash_and_restart(running, supervisor, clock, caplog, "catalog")

        second = running.processes["catalog"]
        assert get_json(f"{url}/env") == env_before  # same port, same environment
        assert running.urls["catalog"] == f"http://127.0.0.1:{ports.catalog}"
        assert gone(helper), "the dead service's helpers went with it"
        others = [running.processes[n] for n in running.processes if n != "catalog"]
        assert not any(p.has_exited() for p in others), "the others kept running"
    log = (run_dir / "logs" / "catalog.log").read_text()

    assert line == (
        "catalog was killed by SIGKILL after 5 s up; restarting it in 1 s "
        f"(log {run_dir / 'logs' / 'catalog.log'})"
    )
    assert log.count("stand-in starting") == 2, "the log is continued, not replaced"
    assert gone(first.pid)
    assert gone(second.pid), "stopping the services stops the restarted process"


def test_crashes_in_a_row_wait_longer_until_the_service_stays_up(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.supervisor")
    clock = FakeClock()
    with start_services(STORE_ENV, run_dir, None, commands()) as running:
        supervisor = Supervisor(running, RestartPolicy(1, 30, 60), clock=clock)

        delays = [crash_and_restart(running, supervisor, clock, caplog, "auth")[1]]
        delays.append(crash_and_restart(running, supervisor, clock, caplog, "auth")[1])
        delays.append(crash_and_restart(running, supervisor, clock, caplog, "auth")[1])
        clock.advance(60)
        delays.append(crash_and_restart(running, supervisor, clock, caplog, "auth")[1])

    assert delays == [1, 2, 4, 1]


def test_a_service_that_exits_with_a_code_is_restarted_too(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.supervisor")
    clock = FakeClock()
    with start_services(STORE_ENV, run_dir, None, commands()) as running:
        supervisor = Supervisor(running, clock=clock)
        running.processes["gateway"].popen.terminate()  # a clean exit on SIGTERM: code 0
        check_until(supervisor, lambda: bool(supervisor_lines(caplog)))
        clock.advance(1)
        check_until(supervisor, lambda: "gateway is ready again" in supervisor_lines(caplog)[-1])

    assert supervisor_lines(caplog)[0].startswith("gateway exited with code 0 after 0 s up;")
