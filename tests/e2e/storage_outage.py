"""A private S3 server (SeaweedFS) that a test can `kill -9` and start again on the same
ports and data, and Kino stacks (their own in-memory SecantusDB and the four services,
as `make run` starts them) that use it, to cause storage outages for real: the
session's S3 server is shared by every test and is never touched.

The stacks share the session's broker under their own exchange and queue prefix. The
methods and context managers block: from a test's event loop, call them with
`asyncio.to_thread`.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.mongo_server import run_secantusdb
from devstack.ports import LOOPBACK, PortPlan, free_port
from devstack.processes import EmbeddedServer
from devstack.s3_server import S3Credentials, remove_weed_sockets, run_seaweedfs
from devstack.services import start_services
from devstack.stores import DEV_S3_ACCESS_KEY, DEV_S3_SECRET_KEY
from tests.stack_cleanup import declared_exchanges


#: The queues a stack's services declare, as in the session's `stack` fixture.
@dataclass
class PrivateS3:
    """`weed mini` on ports and a data directory of its own."""

    ports: PortPlan
    data_dir: Path
    log_dir: Path
    credentials: S3Credentials
    #: Every run of the server is entered here, so whatever still runs stops at the end.
    _runs: ExitStack
    _server: EmbeddedServer | None = None
    _starts: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.s3}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Start the server (again) on the same ports and data; returns once S3 answers."""
        assert self._server is None, "the S3 server is running already"
        self._starts += 1
        self._server = self._runs.enter_context(
            run_seaweedfs(
                ports=self.ports,
                data_dir=self.data_dir,
                credentials=self.credentials,
                log_path=self.log_dir / f"seaweedfs-{self._starts}.log",
            )
        )

    def kill(self) -> None:
        """`kill -9` of the server's process group; returns once it is gone."""
        assert self._server is not None, "the S3 server is not running"
        process = self._server.process
        process.signal_group(signal.SIGKILL)
        process.popen.wait()
        # A killed `weed mini` leaves its unix sockets behind; the next start needs them gone.
        remove_weed_sockets(self.ports)
        self._server = None


@contextmanager
def private_s3(run_dir: Path) -> Iterator[PrivateS3]:
    with ExitStack() as runs:
        s3 = PrivateS3(
            ports=PortPlan.dynamic(),
            data_dir=run_dir / "s3",
            log_dir=run_dir / "logs",
            credentials=S3Credentials(DEV_S3_ACCESS_KEY, DEV_S3_SECRET_KEY),
            _runs=runs,
        )
        s3.start()
        yield s3


@dataclass(frozen=True)
class OutageStack:
    """One running stack: its gateway, and the prefix of what it named on the broker."""

    name: str
    prefix: str
    gateway_url: str

    def queue(self, service: str, subscription: str) -> str:
        return f"{self.prefix}.{service}.{subscription}"


def stack_prefix(name: str) -> str:
    return f"s3out-{uuid.uuid4().hex[:8]}-{name}"


@contextmanager
def outage_stack(
    name: str,
    prefix: str,
    service_env: Mapping[str, str],
    s3: PrivateS3,
    run_dir: Path,
    *,
    retry_delay_seconds: float,
    max_attempts: int,
) -> Iterator[OutageStack]:
    """The four services on `s3`, with a database server of their own (auth and catalog
    would otherwise share the session's databases, and catalog's outbox sweep would
    publish what another stack left there), and the given retry budget."""
    with run_secantusdb(
        port=free_port(), storage=None, log_path=run_dir / "logs" / "secantusdb.log"
    ) as mongo:
        exchange, storage_events = declared_exchanges(prefix)
        env = {
            **service_env,
            "KINO_MONGO_URL": mongo.url,
            "KINO_S3_ENDPOINT": s3.endpoint,
            "KINO_S3_ACCESS_KEY": s3.credentials.access_key,
            "KINO_S3_SECRET_KEY": s3.credentials.secret_key,
            # Catalog creates it at start (`open_storage`), before any request needs it.
            # Lowercase letters, digits and hyphens: the prefix is a valid bucket name.
            "KINO_S3_BUCKET": prefix,
            "KINO_AMQP_EXCHANGE": exchange,
            "KINO_AMQP_QUEUE_PREFIX": prefix,
            "KINO_STORAGE_EVENTS_EXCHANGE": storage_events,
            "KINO_AMQP_RETRY_DELAY_SECONDS": str(retry_delay_seconds),
            "KINO_AMQP_MAX_ATTEMPTS": str(max_attempts),
        }
        with start_services(env, run_dir / "services") as running:
            yield OutageStack(name, prefix, running.gateway_url)
