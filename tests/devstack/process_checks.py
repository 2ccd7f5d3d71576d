"""Finding processes a test expects to be gone."""

from __future__ import annotations

import psutil


def processes_mentioning(*needles: str) -> list[psutil.Process]:
    """Live processes whose command line contains any of `needles` (ports, node names)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = " ".join(process.info["cmdline"] or [])
        if any(needle in cmdline for needle in needles):
            found.append(process)
    return found


def processes_with_environment(name: str, value: str) -> list[psutil.Process]:
    """Live processes whose environment has `name=value` (a RabbitMQ node's name is
    in its environment, not on its command line)."""
    found = []
    for process in psutil.process_iter(["status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if process.environ().get(name) == value:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
    return found
