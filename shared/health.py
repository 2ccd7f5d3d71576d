"""`/health` (liveness), `/ready` (dependencies reachable) and `/metrics` (Prometheus).

Internal services serve them on their one port, which only the cluster reaches. The
gateway's port is public, so it serves them on a separate admin port (`admin_app`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from shared.http import Handler
from shared.keys import METRICS_REGISTRY, READINESS

HEALTH_PATHS = ("/health", "/ready", "/metrics")

Check = Callable[[], Awaitable[bool]]


class ReadinessChecks:
    """Named dependency checks; the service is ready when every one passes."""

    def __init__(self, timeout_seconds: float = 3.0) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout = timeout_seconds

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def run(self) -> dict[str, bool]:
        async def one(check: Check) -> bool:
            try:
                return await asyncio.wait_for(check(), self._timeout)
            except Exception:
                return False

        results = await asyncio.gather(*(one(c) for c in self._checks.values()))
        return dict(zip(self._checks, results, strict=True))


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    checks = await request.app[READINESS].run()
    ok = all(checks.values())
    return web.json_response(
        {"status": "ready" if ok else "not ready", "checks": checks}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_middleware(
    registry: CollectorRegistry,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    requests = Counter(
        "http_requests", "HTTP requests served", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "http_request_duration_seconds",
        "Time to first response byte",
        ["method", "route"],
        registry=registry,
    )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        response = await handler(request)
        latency.labels(request.method, name).observe(time.perf_counter() - started)
        requests.labels(request.method, name, str(response.status)).inc()
        return response

    return middleware


def add_health_state(app: web.Application, registry: CollectorRegistry) -> ReadinessChecks:
    """Give the app its readiness checks (for the service to fill) and metrics registry."""
    checks = ReadinessChecks()
    app[READINESS] = checks
    app[METRICS_REGISTRY] = registry
    return checks


def add_health_routes(app: web.Application) -> None:
    """Serve the three routes from the app's own health state."""
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)


def admin_app(service_app: web.Application) -> web.Application:
    """An app serving only the three routes, for `service_app`'s checks and metrics."""
    admin = web.Application()
    admin[READINESS] = service_app[READINESS]
    admin[METRICS_REGISTRY] = service_app[METRICS_REGISTRY]
    add_health_routes(admin)
    return admin
