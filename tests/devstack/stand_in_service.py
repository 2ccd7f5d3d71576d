"""A stand-in for a Kino service, to test the supervisor without the real services.

Run as `python stand_in_service.py [--exit-at-once] [--ignore-sigterm] [--spawn-child]`.
It serves `/ready` (200) and `/env` (its `KINO_*` environment as JSON) on
`KINO_HTTP_HOST:KINO_HTTP_PORT`, like a real service configured by the environment,
and on `KINO_GATEWAY_ADMIN_PORT` too when it is set (the gateway's admin port).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from aiohttp import web

from devstack.ports import SERVICE_NAMES


def command(*flags: str) -> list[str]:
    """The command line running this stand-in."""
    return [sys.executable, str(Path(__file__).resolve()), *flags]


def commands(**flags_by_service: list[str]) -> dict[str, list[str]]:
    """A stand-in command for every service, with extra flags for some."""
    return {name: command(*flags_by_service.get(name, [])) for name in SERVICE_NAMES}


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def environment(request: web.Request) -> web.Response:
    return web.json_response({k: v for k, v in os.environ.items() if k.startswith("KINO_")})


async def child_pid(request: web.Request) -> web.Response:
    return web.json_response({"pid": request.app[CHILD_PID]})


CHILD_PID = web.AppKey("child_pid", int)


def main(flags: list[str]) -> None:
    print(f"stand-in starting with {flags}", flush=True)
    if "--exit-at-once" in flags:
        print("stand-in: refusing to start", flush=True)
        sys.exit(3)
    app = web.Application()
    app.router.add_get("/ready", ready)
    app.router.add_get("/env", environment)
    app.router.add_get("/child", child_pid)
    app[CHILD_PID] = 0
    if "--spawn-child" in flags:
        # A helper in the service's process group, as a real service might start.
        app[CHILD_PID] = subprocess.Popen(["sleep", "300"]).pid
    ignore_sigterm = "--ignore-sigterm" in flags
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ports = [os.environ["KINO_HTTP_PORT"], os.environ.get("KINO_GATEWAY_ADMIN_PORT")]
    sockets = [
        socket.create_server((os.environ["KINO_HTTP_HOST"], int(port))) for port in ports if port
    ]
    web.run_app(app, sock=sockets, handle_signals=not ignore_sigterm, print=None)


if __name__ == "__main__":
    main(sys.argv[1:])
