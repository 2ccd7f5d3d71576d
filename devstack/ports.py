"""Which ports the devstack uses, and the check that they are free before anything starts.

`make run` uses fixed, well-known ports (each overridable by a `KINO_DEV_PORT_*`
variable) so that URLs stay the same from one run to the next; tests use free ports
picked at random so that several suites can run side by side. Checking every port
up front turns "address already in use" deep inside some server's log into one line
naming the port, the component and the variable that moves it.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from devstack.errors import DevstackError, PortInUse

LOOPBACK = "127.0.0.1"

#: SeaweedFS serves gRPC on every HTTP port + 10000 (no flag moves it in `weed mini`).
WEED_GRPC_OFFSET = 10000

#: Dynamic ports come from here: above the well-known ones, and low enough that
#: port + WEED_GRPC_OFFSET is still a valid port. Narrowed further, where the system
#: says so, to stay below the kernel's ephemeral range (see `dynamic_port_range`).
DYNAMIC_PORT_RANGE = (10000, 55000)

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@dataclass(frozen=True)
class PortNeed:
    """One port a component will listen on, and the variable that changes it."""

    port: int
    component: str
    env_var: str | None = None


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on host:port (a bind succeeds).

    SO_REUSEADDR keeps connections lingering in TIME_WAIT from counting as "in use":
    the servers set it too, so only a real listener makes them fail.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def check_ports_free(needs: Iterable[PortNeed]) -> None:
    """Raise `DevstackError` for a port out of range (a setting to fix, whatever else
    listens), else `PortInUse` for the first needed port that is taken."""
    needs = list(needs)
    for need in needs:
        if not 0 < need.port <= 65535:
            how = f"; set {need.env_var} lower" if need.env_var else ""
            raise DevstackError(
                f"port {need.port} needed by {need.component} is out of range (1-65535){how}"
            )
    for need in needs:
        if not port_is_free(need.port):
            raise PortInUse(need.port, need.component, need.env_var)


def free_port(*, with_grpc: bool = False, exclude: Collection[int] = ()) -> int:
    """A port that is free now; with `with_grpc`, port + 10000 is free as well.

    Random rather than "bind to port 0": the kernel's ephemeral range reaches past
    55535, where SeaweedFS's gRPC port would not exist, and random choices make two
    test runs on one machine unlikely to collide.
    """
    low, high = dynamic_port_range(with_grpc=with_grpc)
    for _ in range(2000):
        port = random.randint(low, high)
        wanted = (port, port + WEED_GRPC_OFFSET) if with_grpc else (port,)
        if any(p in exclude for p in wanted):
            continue
        if all(port_is_free(p) for p in wanted):
            return port
    raise DevstackError(f"no free port found between {low} and {high}")


def dynamic_port_range(*, with_grpc: bool) -> tuple[int, int]:
    """Where to pick a dynamic port: below the kernel's ephemeral range when possible.

    Outgoing connections take their local port from the ephemeral range (32768+ on
    Linux); a server port picked there could be taken by some client between our
    check and the server's bind. Below it, only listeners compete.
    """
    low, high = DYNAMIC_PORT_RANGE
    offset = WEED_GRPC_OFFSET if with_grpc else 0
    try:
        ephemeral_low = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return low, high
    below = ephemeral_low - 1 - offset
    if below - low < 1000:  # too little room below it: accept the small risk
        return low, high
    return low, min(high, below)


def _read_port(environ: Mapping[str, str], env_var: str, default: int) -> int:
    raw = environ.get(env_var, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise DevstackError(f"{env_var}={raw!r} is not a port number") from None


@dataclass(frozen=True)
class _PortField:
    component: str
    env_var: str
    weed: bool = False


_STORE_PORT_FIELDS: Mapping[str, _PortField] = {
    "mongo": _PortField("SecantusDB (MongoDB)", "KINO_DEV_PORT_MONGO"),
    "s3": _PortField("SeaweedFS S3", "KINO_DEV_PORT_S3", weed=True),
    "s3_master": _PortField("SeaweedFS master", "KINO_DEV_PORT_S3_MASTER", weed=True),
    "s3_filer": _PortField("SeaweedFS filer", "KINO_DEV_PORT_S3_FILER", weed=True),
    "s3_volume": _PortField("SeaweedFS volume", "KINO_DEV_PORT_S3_VOLUME", weed=True),
    "s3_admin": _PortField("SeaweedFS admin", "KINO_DEV_PORT_S3_ADMIN", weed=True),
    "amqp_dist": _PortField("RabbitMQ private node (distribution)", "KINO_DEV_PORT_AMQP_DIST"),
}


@dataclass(frozen=True)
class PortPlan:
    """Ports of the stores the devstack may start itself.

    The AMQP listener port is not here: it comes from `KINO_AMQP_URL`, because a
    private RabbitMQ node is started exactly where that URL points.
    """

    mongo: int = 27017
    s3: int = 8333
    s3_master: int = 9333
    s3_filer: int = 8888
    s3_volume: int = 8084
    s3_admin: int = 23646
    amqp_dist: int = 25672

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> PortPlan:
        """The well-known defaults, each overridden by its `KINO_DEV_PORT_*` variable."""
        defaults = cls()
        return cls(
            **{
                name: _read_port(environ, spec.env_var, getattr(defaults, name))
                for name, spec in _STORE_PORT_FIELDS.items()
            }
        )

    @classmethod
    def dynamic(cls, exclude: Collection[int] = ()) -> PortPlan:
        """Free ports for one test run (SeaweedFS ones with their gRPC twin free too)."""
        taken = set(exclude)
        chosen: dict[str, int] = {}
        for name, spec in _STORE_PORT_FIELDS.items():
            port = free_port(with_grpc=spec.weed, exclude=taken)
            chosen[name] = port
            taken.update((port, port + WEED_GRPC_OFFSET))
        return cls(**chosen)

    def mongo_needs(self) -> list[PortNeed]:
        return [self._need("mongo")]

    def seaweed_needs(self) -> list[PortNeed]:
        """Every HTTP port of `weed mini` and the gRPC port 10000 above each."""
        needs: list[PortNeed] = []
        for name, spec in _STORE_PORT_FIELDS.items():
            if spec.weed:
                port = getattr(self, name)
                needs.append(self._need(name))
                needs.append(
                    PortNeed(
                        port + WEED_GRPC_OFFSET,
                        f"{spec.component} gRPC (its port + {WEED_GRPC_OFFSET})",
                        spec.env_var,
                    )
                )
        return needs

    def amqp_dist_needs(self) -> list[PortNeed]:
        return [self._need("amqp_dist")]

    def _need(self, name: str) -> PortNeed:
        spec = _STORE_PORT_FIELDS[name]
        return PortNeed(getattr(self, name), spec.component, spec.env_var)


#: Service names in start order: the gateway comes last because it calls the others.
SERVICE_NAMES = ("auth", "catalog", "transcoder", "gateway")


@dataclass(frozen=True)
class ServicePorts:
    """HTTP port of each service, and the gateway's admin port (its `/ready`)."""

    gateway: int = 8080
    auth: int = 8081
    catalog: int = 8082
    transcoder: int = 8083
    gateway_admin: int = 8090

    @staticmethod
    def env_var(name: str) -> str:
        return f"KINO_DEV_PORT_{name.upper()}"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServicePorts:
        defaults = cls()
        return cls(
            **{
                name: _read_port(environ, cls.env_var(name), getattr(defaults, name))
                for name in cls._names()
            }
        )

    @classmethod
    def dynamic(cls, exclude: Collection[int] = ()) -> ServicePorts:
        taken = set(exclude)
        chosen: dict[str, int] = {}
        for name in cls._names():
            chosen[name] = free_port(exclude=taken)
            taken.add(chosen[name])
        return cls(**chosen)

    def by_name(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self._names()}

    def ready_port(self, service: str) -> int:
        """Where the service answers `/ready`: the gateway on its admin port."""
        return self.gateway_admin if service == "gateway" else self.by_name()[service]

    def needs(self) -> list[PortNeed]:
        return [
            PortNeed(getattr(self, name), _component(name), self.env_var(name))
            for name in self._names()
        ]

    @classmethod
    def _names(cls) -> list[str]:
        return [field.name for field in fields(cls)]


def _component(port_name: str) -> str:
    if port_name == "gateway_admin":
        return "the gateway's admin port"
    return f"the {port_name} service"
