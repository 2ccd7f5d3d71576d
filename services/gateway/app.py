"""The gateway's app factory: the only public port of Kino, and its admin port."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from services.gateway.keys import (
    HTTP_SESSION,
    IDENTITY_SIGNER,
    OPENAPI_DOCUMENT,
    SETTINGS,
    TOKEN_VERIFIER,
)
from services.gateway.openapi import document_bytes
from services.gateway.proxy import http_route
from services.gateway.routes import routes
from services.gateway.settings import GatewaySettings
from services.gateway.static_files import STATIC_DIR
from services.gateway.token_verifier import JwksTokenVerifier
from shared.app_factory import PortTaken, new_service_app
from shared.health import admin_app
from shared.identity import IdentitySigner
from shared.keys import READINESS
from shared.lifecycle import CleanupContext

SERVICE = "gateway"


def create_app(settings: GatewaySettings) -> web.Application:
    # Bodies are streamed by the proxy, which enforces its own limits. The health routes
    # are not on the public port: a public path there is proxied or a 404.
    # Traces begin here (`verify_identity=False`: a public edge), each request's span
    # named after the routing table's entry it is forwarded by.
    app = new_service_app(
        settings, errors={}, verify_identity=False, health_routes=False, http_route=http_route
    )
    app[SETTINGS] = settings
    app[IDENTITY_SIGNER] = IdentitySigner(settings.internal_secret.get_secret_value())
    # Built at start (a broken document stops the start, not a request); the same bytes
    # for every caller.
    app[OPENAPI_DOCUMENT] = document_bytes()

    async def http_session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=128, keepalive_timeout=30)
        async with aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        ) as session:
            app[HTTP_SESSION] = session
            verifier = JwksTokenVerifier(
                session,
                settings.auth_url.rstrip("/") + "/.well-known/jwks.json",
                min_refresh_seconds=settings.gateway_jwks_min_refresh_seconds,
            )
            app[TOKEN_VERIFIER] = verifier
            app[READINESS].add("auth-keys", verifier.ensure_keys)
            app[READINESS].add("catalog", lambda: _healthy(session, settings.catalog_url))
            yield

    app.cleanup_ctx.append(http_session)
    app.cleanup_ctx.append(_admin_port(settings))
    # Front-end packages `make setup` installs (hls.js), before the proxy's catch-all.
    app.router.add_static("/static/", STATIC_DIR)
    app.add_routes(routes)
    return app


def _admin_port(settings: GatewaySettings) -> CleanupContext:
    """Serve `/health`, `/ready` and `/metrics` on `KINO_GATEWAY_ADMIN_PORT` while the
    gateway runs."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(admin_app(app), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, settings.http_host, settings.gateway_admin_port)
            try:
                await site.start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise PortTaken(
                    settings.http_host, settings.gateway_admin_port, "KINO_GATEWAY_ADMIN_PORT"
                ) from exc
            yield
        finally:
            await runner.cleanup()

    return context


async def _healthy(session: aiohttp.ClientSession, base_url: str) -> bool:
    try:
        async with session.get(base_url.rstrip("/") + "/health") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False
