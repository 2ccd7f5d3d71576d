"""A private RabbitMQ node that a test can stop, start and kill, to cause broker
outages for real (the session's shared broker is never touched). The methods block:
call them with `asyncio.to_thread` from a test whose event loop runs a broker."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import StoreFailed
from devstack.ports import LOOPBACK, free_port
from devstack.probes import wait_until
from devstack.rabbitmq_node import (
    NodeLayout,
    RabbitmqTools,
    amqp_login,
    find_rabbitmq,
    install_rabbitmq,
    run_private_node,
)


@dataclass(frozen=True)
class PrivateNode:
    url: str
    tools: RabbitmqTools
    layout: NodeLayout

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [self.tools.ctl, "-n", self.layout.node_name, *args],
            env=self.layout.environ(),
            capture_output=True,
            check=True,
            timeout=120,
        )

    def stop_app(self) -> None:
        """`rabbitmqctl stop_app`: the node stays up, the broker inside it stops."""
        self._ctl("stop_app")

    def start_app(self) -> None:
        self._ctl("start_app")
        self._wait_answering()

    def kill(self) -> None:
        """kill -9 of the node's process."""
        pid = self.layout.read_pid()
        assert pid is not None, "the node wrote no pid file"
        os.kill(pid, signal.SIGKILL)
        wait_until(self._gone, what="the killed node", timeout=30, error=StoreFailed)

    def _gone(self) -> None:
        if self.layout.death_reason() is None:
            raise RuntimeError("still running")

    def start(self) -> None:
        """Start the node again after `kill`, on its data directory."""
        self.layout.prepare(self.url)
        subprocess.run(
            [self.tools.server, "-detached"],
            env=self.layout.environ(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
            start_new_session=True,
            timeout=60,
        )
        self._wait_answering()

    def _wait_answering(self) -> None:
        wait_until(
            lambda: amqp_login(self.url, timeout=2),
            what="the RabbitMQ node",
            timeout=90,
            error=StoreFailed,
        )


@contextmanager
def private_node() -> Iterator[PrivateNode]:
    """A fresh node in a directory of its own under the system's temporary directory
    (run as root, the node runs as `rabbitmq`, which cannot enter pytest's)."""
    with tempfile.TemporaryDirectory(
        prefix="kino-outage-node-", ignore_cleanup_errors=True
    ) as directory:
        base = Path(directory)
        tools = find_rabbitmq() or install_rabbitmq(base / "install.log")
        port, dist_port = free_port(), free_port()
        url = f"amqp://guest:guest@{LOOPBACK}:{port}/"
        with run_private_node(tools=tools, url=url, dist_port=dist_port, base=base):
            yield PrivateNode(url, tools, NodeLayout(base, port, dist_port))
