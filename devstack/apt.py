"""Installing a Debian package the devstack or the tests need (RabbitMQ, Chromium): only
on Debian and as root, with `apt-get`, its output into a log file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from devstack.errors import DevstackError


def can_apt_install() -> bool:
    """On Debian and as root, `apt-get install` is ours to run."""
    return (
        Path("/etc/debian_version").exists()
        and os.geteuid() == 0
        and shutil.which("apt-get") is not None
    )


def apt_install(
    packages: list[str],
    log_path: Path,
    *,
    options: tuple[str, ...] = (),
    error: type[DevstackError] = DevstackError,
) -> None:
    """`apt-get update && apt-get install -y [options] packages`, output into `log_path`;
    a failing step raises `error` naming it and the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log_path.open("wb") as log:
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", *options, *packages]):
            result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
            if result.returncode != 0:
                raise error(f"{' '.join(argv)} failed (exit {result.returncode}); see {log_path}")
