"""The three stores Kino needs (MongoDB, S3, AMQP): decide which to start, start them, stop them.

A store given by the environment (`KINO_MONGO_URL`, `KINO_S3_ENDPOINT`, a broker
answering at `KINO_AMQP_URL`) is used as it is; the others are started here:
SecantusDB, SeaweedFS and, when no broker answers, a private RabbitMQ node. Only what
was started here is stopped here.

Deciding (`plan_stores`) is separate from starting (`launch_stores`) so that
`python -m devstack` can check every port it will need, the services' included,
before it starts anything. Tests use `start_stores`, which does both.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from devstack.apt import can_apt_install
from devstack.errors import StoreFailed, redact_url
from devstack.mongo_server import check_mongo, find_secantusd, run_secantusdb
from devstack.ports import PortNeed, PortPlan, check_ports_free
from devstack.processes import ManagedProcess, terminate
from devstack.rabbitmq_node import (
    DEFAULT_AMQP_URL,
    RABBITMQ_USER,
    RabbitmqTools,
    amqp_host_port,
    broker_answers,
    find_rabbitmq,
    install_rabbitmq,
    missing_rabbitmq_message,
    needs_handover_to_rabbitmq_user,
    reachable_by,
    run_private_node,
)
from devstack.s3_server import S3Credentials, check_s3, find_weed, run_seaweedfs

logger = logging.getLogger(__name__)

#: Development S3 keys: the secret carries the `kino-dev-` marker that production
#: settings refuse (see shared/config.py).
DEV_S3_ACCESS_KEY = "kinodev"
DEV_S3_SECRET_KEY = "kino-dev-s3-secret"


@dataclass(frozen=True)
class StoreSettings:
    """What the environment says about the stores.

    `mongo_url` / `s3_endpoint` set means "use that one, start nothing"; the S3 keys
    are those of the external endpoint, or the ones the embedded SeaweedFS is given.
    """

    mongo_url: str | None = None
    s3_endpoint: str | None = None
    s3_access_key: str = DEV_S3_ACCESS_KEY
    s3_secret_key: str = DEV_S3_SECRET_KEY
    amqp_url: str = DEFAULT_AMQP_URL

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> StoreSettings:
        def read(name: str) -> str | None:
            return environ.get(name, "").strip() or None

        return cls(
            mongo_url=read("KINO_MONGO_URL"),
            s3_endpoint=read("KINO_S3_ENDPOINT"),
            s3_access_key=read("KINO_S3_ACCESS_KEY") or DEV_S3_ACCESS_KEY,
            s3_secret_key=read("KINO_S3_SECRET_KEY") or DEV_S3_SECRET_KEY,
            amqp_url=read("KINO_AMQP_URL") or DEFAULT_AMQP_URL,
        )

    @property
    def s3_credentials(self) -> S3Credentials:
        return S3Credentials(self.s3_access_key, self.s3_secret_key)


class AmqpSource(Enum):
    """Where AMQP comes from."""

    BROKER = "an existing broker"
    PRIVATE_NODE = "a private RabbitMQ node"
    INSTALL_THEN_PRIVATE_NODE = "a private RabbitMQ node (rabbitmq-server to be installed)"


@dataclass(frozen=True)
class StorePlan:
    """Which stores will be started, on which ports. Deciding starts nothing."""

    settings: StoreSettings
    ports: PortPlan
    ephemeral: bool
    start_mongo: bool
    start_s3: bool
    amqp: AmqpSource
    rabbitmq: RabbitmqTools | None = None

    def port_needs(self) -> list[PortNeed]:
        """Every port the stores to be started will listen on."""
        needs: list[PortNeed] = []
        if self.start_mongo:
            needs += self.ports.mongo_needs()
        if self.start_s3:
            needs += self.ports.seaweed_needs()
        if self.amqp is not AmqpSource.BROKER:
            _, amqp_port = amqp_host_port(self.settings.amqp_url)
            needs.append(PortNeed(amqp_port, "RabbitMQ private node (AMQP)", "KINO_AMQP_URL"))
            needs += self.ports.amqp_dist_needs()
        return needs


def plan_stores(settings: StoreSettings, ports: PortPlan, *, ephemeral: bool) -> StorePlan:
    """Decide what to start; fails early when a needed program is missing."""
    start_mongo = settings.mongo_url is None
    start_s3 = settings.s3_endpoint is None
    if start_mongo:
        find_secantusd()
    if start_s3:
        find_weed()
    rabbitmq: RabbitmqTools | None = None
    if broker_answers(settings.amqp_url):
        amqp = AmqpSource.BROKER
    elif (rabbitmq := find_rabbitmq()) is not None:
        amqp = AmqpSource.PRIVATE_NODE
    elif can_apt_install():
        amqp = AmqpSource.INSTALL_THEN_PRIVATE_NODE
    else:
        raise StoreFailed(missing_rabbitmq_message(settings.amqp_url))
    return StorePlan(settings, ports, ephemeral, start_mongo, start_s3, amqp, rabbitmq)


@dataclass(frozen=True)
class StoreEndpoints:
    """Where the running stores are, as the services' settings want them."""

    mongo_url: str
    amqp_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    #: One line per store for the banner: what it is, where, started here or not.
    descriptions: tuple[str, ...] = field(default=())

    def service_env(self) -> dict[str, str]:
        """The `KINO_*` store settings every service reads."""
        return {
            "KINO_MONGO_URL": self.mongo_url,
            "KINO_AMQP_URL": self.amqp_url,
            "KINO_S3_ENDPOINT": self.s3_endpoint,
            "KINO_S3_ACCESS_KEY": self.s3_access_key,
            "KINO_S3_SECRET_KEY": self.s3_secret_key,
        }


@contextmanager
def start_stores(
    run_dir: Path,
    ports: PortPlan | None = None,
    ephemeral: bool = True,
    settings: StoreSettings | None = None,
) -> Iterator[StoreEndpoints]:
    """Start the stores the environment does not provide; stop them when the block ends.

    `ephemeral=True` (tests): MongoDB in memory, free ports chosen at random when
    `ports` is None, everything under `run_dir` (a temporary directory). Otherwise the
    data under `run_dir` outlives the run and `ports` defaults to the well-known ones.
    `settings` defaults to the `KINO_*` variables of this process.
    """
    if settings is None:
        settings = StoreSettings.from_environ(os.environ)
    if ports is None:
        ports = PortPlan.dynamic() if ephemeral else PortPlan.from_environ(os.environ)
    plan = plan_stores(settings, ports, ephemeral=ephemeral)
    check_ports_free(plan.port_needs())
    with launch_stores(plan, run_dir) as endpoints:
        yield endpoints


@contextmanager
def launch_stores(plan: StorePlan, run_dir: Path) -> Iterator[StoreEndpoints]:
    """Start what `plan` says, in order MongoDB, S3, AMQP; stop them in reverse."""
    with ExitStack() as started:
        mongo = _mongo(plan, run_dir, started)
        s3 = _s3(plan, run_dir, started)
        amqp = _amqp(plan, run_dir, started)
        embedded = [store.process for store in (mongo, s3, amqp) if store.process is not None]
        if embedded or plan.amqp is not AmqpSource.BROKER:
            # Run first on the way out, whatever the way: every embedded server begins
            # its shutdown at once, so stopping takes as long as the slowest (about
            # 2 s each), not their sum.
            started.callback(terminate, embedded)
            started.callback(logger.info, "stopping the stores started here")
        yield StoreEndpoints(
            mongo_url=mongo.url,
            amqp_url=amqp.url,
            s3_endpoint=s3.url,
            s3_access_key=plan.settings.s3_access_key,
            s3_secret_key=plan.settings.s3_secret_key,
            descriptions=(mongo.description, s3.description, amqp.description),
        )


@dataclass(frozen=True)
class _Store:
    """One store as launched: its URL, a line for the banner, our process if any."""

    url: str
    description: str
    process: ManagedProcess | None = None


def _mongo(plan: StorePlan, run_dir: Path, started: ExitStack) -> _Store:
    if not plan.start_mongo:
        assert plan.settings.mongo_url is not None
        check_mongo(plan.settings.mongo_url)
        shown = redact_url(plan.settings.mongo_url)
        return _Store(plan.settings.mongo_url, f"MongoDB  {shown}  (from KINO_MONGO_URL)")
    storage = None if plan.ephemeral else run_dir / "mongo"
    logger.info("starting SecantusDB on port %d", plan.ports.mongo)
    server = started.enter_context(
        run_secantusdb(
            port=plan.ports.mongo, storage=storage, log_path=run_dir / "logs" / "secantusdb.log"
        )
    )
    where = "in memory" if storage is None else f"data in {storage}"
    return _Store(
        server.url, f"MongoDB  {server.url}  (SecantusDB started here, {where})", server.process
    )


def _s3(plan: StorePlan, run_dir: Path, started: ExitStack) -> _Store:
    settings = plan.settings
    if not plan.start_s3:
        assert settings.s3_endpoint is not None
        check_s3(settings.s3_endpoint, settings.s3_credentials)
        return _Store(
            settings.s3_endpoint, f"S3       {settings.s3_endpoint}  (from KINO_S3_ENDPOINT)"
        )
    logger.info("starting SeaweedFS S3 on port %d", plan.ports.s3)
    data_dir = run_dir / "s3"
    server = started.enter_context(
        run_seaweedfs(
            ports=plan.ports,
            data_dir=data_dir,
            credentials=settings.s3_credentials,
            log_path=run_dir / "logs" / "seaweedfs.log",
        )
    )
    return _Store(
        server.url,
        f"S3       {server.url}  (SeaweedFS started here, data in {data_dir})",
        server.process,
    )


def _amqp(plan: StorePlan, run_dir: Path, started: ExitStack) -> _Store:
    url = plan.settings.amqp_url
    shown = redact_url(url)
    if plan.amqp is AmqpSource.BROKER:
        return _Store(url, f"AMQP     {shown}  (broker already running)")
    tools = plan.rabbitmq or _install(run_dir / "logs")
    base = started.enter_context(_rabbitmq_base(run_dir, ephemeral=plan.ephemeral))
    logger.info("starting a private RabbitMQ node in %s", base)
    started.enter_context(
        run_private_node(tools=tools, url=url, dist_port=plan.ports.amqp_dist, base=base)
    )
    return _Store(url, f"AMQP     {shown}  (private RabbitMQ node started here, in {base})")


def _install(logs: Path) -> RabbitmqTools:
    log_path = logs / "apt-rabbitmq-server.log"
    logger.info("installing rabbitmq-server with apt-get (output in %s)", log_path)
    return install_rabbitmq(log_path)


@contextmanager
def _rabbitmq_base(run_dir: Path, *, ephemeral: bool) -> Iterator[Path]:
    """The private node's directory: `run_dir/rabbitmq` when its user can reach it.

    Run as root, the node runs as `rabbitmq`, which cannot enter a private run
    directory (pytest's temporary directories are): an ephemeral node then lives in
    a temporary directory of its own, a persistent one cannot.
    """
    wanted = run_dir / "rabbitmq"
    if not needs_handover_to_rabbitmq_user() or reachable_by(wanted, RABBITMQ_USER):
        yield wanted
        return
    if not ephemeral:
        raise StoreFailed(
            f"the {RABBITMQ_USER} user cannot reach {wanted} (a parent directory is not "
            "traversable): allow it (chmod o+x on the parents), set KINO_DEV_RUN_DIR "
            "elsewhere, or set KINO_AMQP_URL to a running broker"
        )
    with tempfile.TemporaryDirectory(
        prefix="kino-rabbitmq-", ignore_cleanup_errors=True
    ) as directory:
        yield Path(directory)
