"""Keeping `make run`'s services up: one that dies is started again, as a container
runtime's restart policy would do it.

A service that exits on its own (a crash, `kill -9`, an exit with any code) is
restarted after a delay that starts at 1 s and doubles with every crash in a row, up
to 30 s; once a service has stayed up for 60 s its next crash waits 1 s again. The new
process gets the same command, environment and port, and appends to the same log.
Each crash is reported in one line (which service, how it ended, when it restarts),
and each restarted service once more when it answers `/ready` again.

The test suite's `start_services` does not restart anything: a service dying there
is a failure to see. `python -m devstack` calls `Supervisor.check` while it waits.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from devstack.probes import http_ok
from devstack.services import RunningServices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """Delays before restarting a service, in seconds."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    #: A service up this long is considered healthy again: its next crash waits
    #: `first_delay`.
    stable_after: float = 60.0


class Backoff:
    """The delay before each restart of one service: doubling with every crash in a
    row, capped, and back to the first delay after the service stayed up long enough."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.crashes_in_a_row = 0

    def next_delay(self, uptime: float) -> float:
        """The delay before restarting a service that crashed after `uptime` seconds."""
        if uptime >= self.policy.stable_after:
            self.crashes_in_a_row = 0
        self.crashes_in_a_row += 1
        delay = self.policy.first_delay * 2 ** (self.crashes_in_a_row - 1)
        return float(min(self.policy.max_delay, delay))


@dataclass
class _Watched:
    """What the supervisor knows of one service."""

    backoff: Backoff
    started_at: float
    restart_at: float | None = None  # set while a crashed service waits for its restart
    awaiting_ready: bool = False  # restarted, not yet answering `/ready`


def answers_ready(url: str) -> bool:
    """True when the service at `url` answers 200 on `/ready`."""
    try:
        http_ok(f"{url}/ready")
    except Exception:  # a probe: any failure means "not ready yet"
        return False
    return True


class Supervisor:
    """Restarts the services of `running` that exit on their own (see the module doc).

    It replaces entries of `running.processes`, so stopping the services afterwards
    stops the current processes. `clock` (seconds, monotonic) and `policy` are for
    tests; `check` does one round and never sleeps.
    """

    def __init__(
        self,
        running: RunningServices,
        policy: RestartPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._running = running
        self._policy = policy or RestartPolicy()
        self._clock = clock
        now = clock()
        self._watched = {
            name: _Watched(Backoff(self._policy), started_at=now) for name in running.launches
        }

    def check(self) -> None:
        """One round: report and schedule the services that died, restart those whose
        delay is over, and say when a restarted one is ready again."""
        for name, state in self._watched.items():
            now = self._clock()
            process = self._running.processes[name]
            if state.restart_at is None and process.has_exited():
                self._schedule_restart(name, state, now)
            if state.restart_at is not None:
                if now >= state.restart_at:
                    self._restart(name, state, now)
            elif state.awaiting_ready and answers_ready(self._running.launches[name].ready_url):
                state.awaiting_ready = False
                logger.info("%s is ready again at %s", name, self._running.launches[name].url)

    def _schedule_restart(self, name: str, state: _Watched, now: float) -> None:
        process = self._running.processes[name]
        # Helpers it started in its process group go with it, as with a container.
        process.signal_group(signal.SIGKILL)
        uptime = now - state.started_at
        delay = state.backoff.next_delay(uptime)
        state.restart_at = now + delay
        state.awaiting_ready = False
        logger.warning(
            "%s %s after %.0f s up; restarting it in %g s (log %s)",
            name,
            process.exit_status(),
            uptime,
            delay,
            process.log_path,
        )

    def _restart(self, name: str, state: _Watched, now: float) -> None:
        launch = self._running.launches[name]
        self._running.processes[name] = launch.spawn(append=True)
        state.started_at = now
        state.restart_at = None
        state.awaiting_ready = True
        logger.info("restarted %s (pid %d)", name, self._running.processes[name].pid)
