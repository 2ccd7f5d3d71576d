"""Fixtures for the devstack's own tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import LOOPBACK, free_port


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port some other program is listening on, for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        listener.bind((LOOPBACK, free_port()))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
