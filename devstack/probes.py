"""Waiting for a server to be ready: poll a real request against a deadline.

Never a fixed sleep: a server is ready when it answers the request its clients will
make, and waiting stops early when its process has died (with the log tail, which
says why) instead of running into the deadline.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pymongo import MongoClient

from devstack.errors import DevstackError, StoreFailed
from devstack.processes import EmbeddedServer, ManagedProcess, stop_all

T = TypeVar("T")

POLL_INTERVAL = 0.1


def wait_until(
    check: Callable[[], T],
    *,
    what: str,
    timeout: float,
    error: type[DevstackError],
    process: ManagedProcess | None = None,
    still_alive: Callable[[], str | None] | None = None,
) -> T:
    """Call `check` until it returns without raising; give up at the deadline.

    `check` raises while the server is not ready (any exception: refused connection,
    HTTP 503, ...). When `process` exits, or `still_alive` returns a reason, the wait
    fails at once with that explanation.
    """
    deadline = time.monotonic() + timeout
    last_problem = "no attempt made"
    while True:
        try:
            return check()
        except Exception as problem:  # a probe: any failure means "not ready yet"
            last_problem = f"{type(problem).__name__}: {problem}"
        if process is not None and process.has_exited():
            raise error(f"{what} failed to start: {process.describe_exit()}")
        if still_alive is not None and (reason := still_alive()) is not None:
            raise error(f"{what} failed to start: {reason}")
        if time.monotonic() >= deadline:
            tail = f"; log {process.log_path}:\n{process.log_tail()}" if process else ""
            raise error(f"{what} not ready after {timeout:.0f} s ({last_problem}){tail}")
        time.sleep(POLL_INTERVAL)


def wait_for_store(
    check: Callable[[], T],
    *,
    what: str,
    timeout: float,
    process: ManagedProcess | None = None,
    still_alive: Callable[[], str | None] | None = None,
) -> T:
    """`wait_until` for a store (database, object store, broker): failing, it raises
    `StoreFailed`."""
    return wait_until(
        check,
        what=what,
        timeout=timeout,
        error=StoreFailed,
        process=process,
        still_alive=still_alive,
    )


@contextmanager
def embedded_store(
    process: ManagedProcess, url: str, check: Callable[[], object], *, what: str, timeout: float
) -> Iterator[EmbeddedServer]:
    """A store the devstack started (`process`, reached at `url`), once `check` passes.

    The process is stopped when the block ends, and when it never becomes ready.
    """
    try:
        wait_for_store(check, what=what, timeout=timeout, process=process)
        yield EmbeddedServer(url, process)
    finally:
        stop_all([process])


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_tcp(host: str, port: int) -> None:
    """Raise unless host:port accepts connections (cheap first step of a probe)."""
    if not tcp_accepts(host, port):
        raise ConnectionRefusedError(f"nothing accepts connections at {host}:{port}")


def mongo_ping(url: str) -> None:
    """One `ping` command; raises unless the server answers."""
    client: MongoClient[dict[str, Any]]
    with MongoClient(url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000) as client:
        client.admin.command("ping")


def http_ok(url: str) -> None:
    """GET `url`; raises unless the answer is 200."""
    with urllib.request.urlopen(url, timeout=2.0) as response:
        if response.status != 200:
            raise urllib.error.HTTPError(url, response.status, "not ready", response.headers, None)
