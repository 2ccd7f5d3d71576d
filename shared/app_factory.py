"""The skeleton every service's `create_app` starts from, and the process entry point."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from shared.config import KinoSettings
from shared.health import HEALTH_PATHS, add_health_routes, metrics_middleware
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


def new_service_app(
    settings: KinoSettings,
    *,
    errors: Mapping[type[Exception], ErrorMapping],
    open_paths: tuple[str, ...] = (),
    verify_identity: bool = True,
    client_max_size: int = 1024**2,
) -> web.Application:
    """An app with request ids, metrics, the error table, gateway-identity checks and
    the health routes. Only `HEALTH_PATHS` and `open_paths` skip the identity check;
    the gateway itself (`verify_identity=False`) is where identities are made."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # CPU, memory, open files of this process
    middlewares = [request_id_middleware, metrics_middleware(registry), error_middleware(errors)]
    if verify_identity:
        verifier = IdentityVerifier(settings.internal_secret.get_secret_value())
        middlewares.append(identity_middleware(verifier, (*HEALTH_PATHS, *open_paths)))
    app = web.Application(client_max_size=client_max_size, middlewares=middlewares)
    app.on_response_prepare.append(add_request_id_header)
    add_health_routes(app, registry)
    app[OUTBOX_BACKLOG] = outbox_backlog_gauge(registry)
    return app


def run_service(
    service: str,
    settings_factory: Callable[[], KinoSettings],
    create_app: Callable[..., web.Application],
) -> None:
    """Build settings from the environment, configure logging, serve until SIGTERM/SIGINT.

    Configuration errors and a port in use end the process with one clear line.
    """
    try:
        settings = settings_factory()
    except ValueError as exc:
        sys.exit(f"{service}: invalid configuration: {exc}")
    configure_logging(service, json=settings.is_production, level=settings.log_level)
    app = create_app(settings)
    try:
        web.run_app(
            app,
            host=settings.http_host,
            port=settings.http_port,
            print=None,
            access_log=None,
            shutdown_timeout=settings.shutdown_grace_seconds,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            sys.exit(
                f"{service}: port {settings.http_port} on {settings.http_host} is already in use "
                f"(set KINO_HTTP_PORT to another port)"
            )
        raise
