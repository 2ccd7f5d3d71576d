"""The skeleton every service's `create_app` starts from, and the process entry point."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from shared.config import KinoSettings
from shared.health import HEALTH_PATHS, add_health_routes, add_health_state, metrics_middleware
from shared.http import (
    ErrorMapping,
    add_request_id_header,
    error_middleware,
    identity_middleware,
    request_id_middleware,
)
from shared.identity import IdentityVerifier
from shared.keys import OUTBOX_BACKLOG
from shared.logging import configure_logging
from shared.outbox import outbox_backlog_gauge
from shared.tracing import HttpRoute, canonical_route, trace_as, tracing_context, tracing_middleware


def new_service_app(
    settings: KinoSettings,
    *,
    errors: Mapping[type[Exception], ErrorMapping],
    open_paths: tuple[str, ...] = (),
    verify_identity: bool = True,
    client_max_size: int = 1024**2,
    health_routes: bool = True,
    http_route: HttpRoute = canonical_route,
) -> web.Application:
    """An app with tracing, request ids, metrics, the error table, gateway-identity
    checks and the health routes. Only `HEALTH_PATHS` and `open_paths` skip the identity
    check; the gateway itself (`verify_identity=False`) is where identities are made,
    and where traces begin (`tracing_middleware(public=True)`), and serves the health
    routes on its admin port instead (`health_routes=False`). `http_route` names a
    request's route in its span (the route's template by default)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # CPU, memory, open files of this process
    middlewares = [
        # Outermost: the span covers the whole request, and sees the final status.
        tracing_middleware(public=not verify_identity, http_route=http_route),
        request_id_middleware,
        metrics_middleware(registry),
        error_middleware(errors),
    ]
    if verify_identity:
        verifier = IdentityVerifier(settings.internal_secret.get_secret_value())
        middlewares.append(identity_middleware(verifier, (*HEALTH_PATHS, *open_paths)))
    app = web.Application(client_max_size=client_max_size, middlewares=middlewares)
    # First, so the provider is there for every client opened after it and is flushed
    # after they closed.
    app.cleanup_ctx.append(tracing_context)
    app.on_response_prepare.append(add_request_id_header)
    add_health_state(app, registry)
    if health_routes:
        add_health_routes(app)
    app[OUTBOX_BACKLOG] = outbox_backlog_gauge(registry)
    return app


class PortTaken(Exception):
    """Something else listens on a port the service needs."""

    def __init__(self, host: str, port: int, variable: str) -> None:
        super().__init__(
            f"port {port} on {host} is already in use (set {variable} to another port)"
        )


def run_service(
    service: str,
    settings_factory: Callable[[], KinoSettings],
    create_app: Callable[..., web.Application],
) -> None:
    """Build settings from the environment, configure logging and tracing (spans named
    after `service`), serve until SIGTERM/SIGINT.

    Configuration errors and a port in use (`PortTaken`, or the service's own port) end
    the process with one clear line.
    """
    try:
        settings = settings_factory()
    except ValueError as exc:
        sys.exit(f"{service}: invalid configuration: {exc}")
    configure_logging(service, json=settings.is_production, level=settings.log_level)
    app = create_app(settings)
    trace_as(app, service)
    try:
        web.run_app(
            app,
            host=settings.http_host,
            port=settings.http_port,
            print=None,
            access_log=None,
            shutdown_timeout=settings.shutdown_grace_seconds,
        )
    except PortTaken as exc:
        sys.exit(f"{service}: {exc}")
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            taken = PortTaken(settings.http_host, settings.http_port, "KINO_HTTP_PORT")
            sys.exit(f"{service}: {taken}")
        raise
