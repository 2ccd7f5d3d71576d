"""SecantusDB, the MongoDB-wire-protocol server the devstack runs for development and tests.

It is GPL-2.0, so it only ever runs as its own process (`secantusd-py`); nothing
imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.errors import redact_url
from devstack.ports import LOOPBACK
from devstack.probes import embedded_store, mongo_ping, require_tcp, wait_for_store
from devstack.processes import EmbeddedServer, find_executable, spawn

EXECUTABLE = "secantusd-py"


def find_secantusd() -> str:
    """The venv's `secantusd-py` (next to this interpreter) or one on PATH."""
    return find_executable(
        EXECUTABLE,
        advice="install the dev dependencies (pip install -e '.[dev]') "
        "or set KINO_MONGO_URL to a MongoDB server",
    )


@contextmanager
def run_secantusdb(
    *, port: int, storage: Path | None, log_path: Path, timeout: float = 30.0
) -> Iterator[EmbeddedServer]:
    """Run SecantusDB on 127.0.0.1:`port` until the block ends.

    `storage=None` keeps the data in memory (gone when the process stops).
    """
    executable = find_secantusd()
    if storage is not None:
        storage.mkdir(parents=True, exist_ok=True)
    argv = [
        executable,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--storage-path",
        str(storage) if storage is not None else ":memory:",
    ]
    url = f"mongodb://{LOOPBACK}:{port}"
    process = spawn("secantusdb", argv, log_path=log_path)
    with embedded_store(
        process,
        url,
        lambda: _answers(port, url),
        what=f"SecantusDB on port {port}",
        timeout=timeout,
    ) as server:
        yield server


def _answers(port: int, url: str) -> None:
    """A TCP connect first: it fails fast, where PyMongo's server selection would wait."""
    require_tcp(LOOPBACK, port)
    mongo_ping(url)


def check_mongo(url: str, timeout: float = 10.0) -> None:
    """Make sure an external MongoDB (from KINO_MONGO_URL) answers, or say so clearly."""
    wait_for_store(
        lambda: mongo_ping(url),
        what=f"MongoDB at KINO_MONGO_URL={redact_url(url)}",
        timeout=timeout,
    )
