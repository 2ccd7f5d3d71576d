"""RabbitMQ for the devstack: use the broker at KINO_AMQP_URL, or run a private node there.

A broker already answering at the URL is used as it is (that is the common case: a
system RabbitMQ on 5672). When nothing listens there, the devstack starts a private
node of the installed `rabbitmq-server` with everything (data, logs, config, plugins,
pid file) under its own directory, listening exactly where the URL points and with
the URL's credentials as its default user. Starting it with `-detached` means it is
not our child process: it is stopped with `rabbitmqctl stop`, which waits for it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aio_pika
import psutil

from devstack.apt import apt_install
from devstack.errors import StoreFailed, redact_url
from devstack.ports import LOOPBACK
from devstack.probes import require_tcp, tcp_accepts, wait_for_store

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

#: Where Debian's packages put the tools; /usr/sbin is not on every user's PATH.
SYSTEM_SBIN = Path("/usr/sbin")

#: Debian's /usr/sbin scripts refuse to run as anyone but root or `rabbitmq`; the
#: real scripts behind them run as any user.
DEBIAN_LIB_BIN = Path("/usr/lib/rabbitmq/bin")

#: The account Debian's scripts switch to when run as root.
RABBITMQ_USER = "rabbitmq"

#: Hosts a private node can serve: it listens on 127.0.0.1.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})


def amqp_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or LOOPBACK, parts.port or 5672


def amqp_login(url: str, timeout: float = 5.0) -> None:
    """Open and close one AMQP connection with aio-pika (what the services use).

    It runs its own event loop in a worker thread, so that it works whether or not
    the caller (a sync fixture, an async test) already runs a loop in this thread.
    """

    async def login() -> None:
        connection = await aio_pika.connect(url, timeout=timeout)
        await connection.close()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="devstack-amqp") as pool:
        pool.submit(asyncio.run, login()).result()


def broker_answers(url: str) -> bool:
    """True when a broker accepts `url`; False when nothing listens there at all.

    Something that accepts TCP but refuses the AMQP login is neither: starting a node
    on that port would fail too, so it is reported as the problem it is.
    """
    host, port = amqp_host_port(url)
    if not tcp_accepts(host, port):
        return False
    try:
        amqp_login(url)
    except Exception as problem:  # any failure of the login is the user's to fix
        raise StoreFailed(
            f"something listens at {host}:{port} but an AMQP connection with "
            f"KINO_AMQP_URL={redact_url(url)} fails ({type(problem).__name__}: {problem}); "
            "fix KINO_AMQP_URL or stop whatever uses that port"
        ) from None
    return True


@dataclass(frozen=True)
class RabbitmqTools:
    """The two commands a private node needs."""

    server: str
    ctl: str


def find_rabbitmq() -> RabbitmqTools | None:
    """`rabbitmq-server` and `rabbitmqctl` from PATH or /usr/sbin, None when absent."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), str(SYSTEM_SBIN)])
    server = shutil.which("rabbitmq-server", path=search_path)
    ctl = shutil.which("rabbitmqctl", path=search_path)
    if server is None or ctl is None:
        return None
    if os.geteuid() != 0 and (DEBIAN_LIB_BIN / "rabbitmq-server").exists():
        return RabbitmqTools(
            str(DEBIAN_LIB_BIN / "rabbitmq-server"), str(DEBIAN_LIB_BIN / "rabbitmqctl")
        )
    return RabbitmqTools(server, ctl)


def missing_rabbitmq_message(url: str) -> str:
    return (
        f"no AMQP broker answers at KINO_AMQP_URL={redact_url(url)} and rabbitmq-server "
        "is not installed: install it (Debian/Ubuntu: apt-get install rabbitmq-server; "
        "macOS: brew install rabbitmq) or set KINO_AMQP_URL to a running broker"
    )


def install_rabbitmq(log_path: Path) -> RabbitmqTools:
    """`apt-get install rabbitmq-server`, output into `log_path`."""
    apt_install(["rabbitmq-server"], log_path, error=StoreFailed)
    tools = find_rabbitmq()
    if tools is None:
        raise StoreFailed(f"rabbitmq-server still not found after apt-get; see {log_path}")
    return tools


def reachable_by(path: Path, user: str) -> bool:
    """True when `user` may traverse every directory above `path`.

    As root, Debian's scripts run the node as `rabbitmq`; a run directory under a
    private directory (pytest's /tmp/pytest-of-root is 0700) is out of its reach.
    """
    record = user_ids(user)
    if record is None:
        return True  # no such account: the node runs as whoever we are
    uid, gid = record
    for directory in path.resolve().parents:
        info = directory.stat()
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def user_ids(user: str) -> tuple[int, int] | None:
    """(uid, gid) of `user`, None when there is no such account."""
    try:
        import pwd
    except ImportError:  # not on a POSIX system: nothing to switch to
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def needs_handover_to_rabbitmq_user() -> bool:
    """Run as root, Debian's scripts switch to `rabbitmq`, which must own the node's files."""
    return os.geteuid() == 0 and user_ids(RABBITMQ_USER) is not None


@dataclass(frozen=True)
class NodeLayout:
    """Name, ports and files of one private node, all under `base`."""

    base: Path
    port: int
    dist_port: int

    @property
    def node_name(self) -> str:
        # The port makes the name unique per node and stable across `make run`s
        # (the data directory is named after the node).
        return f"kino-{self.port}@localhost"

    @property
    def pid_file(self) -> Path:
        return self.base / "rabbitmq.pid"

    @property
    def log_dir(self) -> Path:
        return self.base / "log"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.node_name}.log"

    def environ(self) -> dict[str, str]:
        """The node's settings: every file under `base`, nothing from /etc/rabbitmq."""
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            # The system's config could add listeners (Debian's adds 127.0.0.1:5672).
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": LOOPBACK,
        }

    def prepare(self, url: str) -> None:
        """Create the files; the URL's user, password and vhost become the defaults.

        Defaults only apply when the node first creates its database, so a persistent
        node keeps the credentials of its first run.
        """
        parts = urlsplit(url)
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        for directory in (self.base, self.base / "mnesia", self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[].\n")  # no management UI: faster boot
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {LOOPBACK}:{self.port}\n"
            f"default_user = {unquote(parts.username or 'guest')}\n"
            f"default_pass = {unquote(parts.password or 'guest')}\n"
            f"default_vhost = {vhost}\n"
        )
        self.pid_file.unlink(missing_ok=True)  # a stale one would look like a dead node
        if needs_handover_to_rabbitmq_user():
            _chown_tree(self.base, RABBITMQ_USER)

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def death_reason(self) -> str | None:
        """Why the node is gone, or None while it may still be coming up."""
        pid = self.read_pid()
        if pid is None or _alive(pid):
            return None
        return f"node {self.node_name} exited; log {self.log_file}:\n{self.log_tail()}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _chown_tree(root: Path, user: str) -> None:
    shutil.chown(root, user, user)
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            shutil.chown(Path(directory) / name, user, user)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@contextmanager
def run_private_node(
    *, tools: RabbitmqTools, url: str, dist_port: int, base: Path, timeout: float = 60.0
) -> Iterator[str]:
    """Run a private RabbitMQ node where `url` points until the block ends; yields `url`."""
    host, port = amqp_host_port(url)
    if host not in LOCAL_HOSTS:
        raise StoreFailed(
            f"no AMQP broker answers at KINO_AMQP_URL={redact_url(url)}, and a private node "
            f"can only be started on this machine: start that broker or use {DEFAULT_AMQP_URL}"
        )
    layout = NodeLayout(base, port, dist_port)
    layout.prepare(url)
    launch_log = layout.base / "launch.log"
    with launch_log.open("wb") as log:
        # A file, not a pipe: the detached node could inherit a pipe and keep it open.
        launch = subprocess.run(
            [tools.server, "-detached"],
            env=layout.environ(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            timeout=60,
        )
    if launch.returncode != 0:
        output = launch_log.read_text(errors="replace")
        raise StoreFailed(f"rabbitmq-server -detached failed (exit {launch.returncode}):\n{output}")
    try:
        wait_for_store(
            lambda: _node_answers(port, url),
            what=f"RabbitMQ node {layout.node_name}",
            timeout=timeout,
            still_alive=layout.death_reason,
        )
        yield url
    finally:
        stop_node(tools, layout)


def _node_answers(port: int, url: str) -> None:
    """A TCP connect first: while the node boots, it fails fast and cheaply."""
    require_tcp(LOOPBACK, port)
    amqp_login(url)


def stop_node(tools: RabbitmqTools, layout: NodeLayout, timeout: float = 60.0) -> None:
    """`rabbitmqctl stop` (which waits for the process to end); SIGKILL if that fails
    or is interrupted, so the node never outlives us."""
    pid = layout.read_pid()
    try:
        with suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [tools.ctl, "-n", layout.node_name, "stop", str(layout.pid_file)],
                env=layout.environ(),
                capture_output=True,
                timeout=timeout,
            )
    finally:
        _kill_if_alive(pid or layout.read_pid())


def _kill_if_alive(pid: int | None) -> None:
    if pid is None or not _alive(pid):
        return
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
