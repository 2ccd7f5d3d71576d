"""The auth service's app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from services.auth.errors import EmailTaken, InvalidCredentials, TooManyAttempts
from services.auth.keys import AUTH_SERVICE, OUTBOX_RELAY, TOKEN_ISSUER
from services.auth.passwords import PasswordHasher
from services.auth.repository import LoginAttemptRepository, UserRepository
from services.auth.routes import routes
from services.auth.service import AuthService, LoginLimits
from services.auth.settings import AuthSettings
from services.auth.token_issuer import TokenIssuer, generate_private_key_pem
from shared.app_factory import new_service_app
from shared.http import ErrorMapping
from shared.keys import BROKER, MONGO_DB, OUTBOX_BACKLOG
from shared.lifecycle import broker_context, mongo_context, outbox_sweep_context
from shared.outbox import OutboxRelay

log = structlog.get_logger(__name__)

SERVICE = "auth"

ERRORS: dict[type[Exception], ErrorMapping] = {
    EmailTaken: ErrorMapping(422, pointer="/data/attributes/email"),
    InvalidCredentials: ErrorMapping(401),
    TooManyAttempts: ErrorMapping(
        429,
        headers=lambda exc: {"Retry-After": str(getattr(exc, "retry_after_seconds", 60))},
    ),
}


def _token_issuer(settings: AuthSettings) -> TokenIssuer:
    if settings.auth_signing_key is not None:
        pem = settings.auth_signing_key.get_secret_value()
    else:
        log.warning("KINO_AUTH_SIGNING_KEY unset: generated a development key; tokens die with it")
        pem = generate_private_key_pem()
    return TokenIssuer(pem, settings.auth_token_ttl_seconds)


def create_app(settings: AuthSettings) -> web.Application:
    app = new_service_app(settings, errors=ERRORS, open_paths=("/.well-known/jwks.json",))
    app[TOKEN_ISSUER] = _token_issuer(settings)
    app.cleanup_ctx.append(mongo_context(settings, SERVICE))
    app.cleanup_ctx.append(broker_context(settings, SERVICE))

    async def domain(app: web.Application) -> AsyncIterator[None]:
        db = app[MONGO_DB]
        users = UserRepository(db)
        attempts = LoginAttemptRepository(db, settings.auth_login_window_seconds)
        outbox = OutboxRelay(users.collection, app[BROKER], backlog=app[OUTBOX_BACKLOG])
        for repository in (users, attempts, outbox):
            await repository.ensure_indexes()
        app[AUTH_SERVICE] = AuthService(
            users,
            attempts,
            PasswordHasher(settings.auth_bcrypt_rounds),
            app[TOKEN_ISSUER],
            outbox,
            LoginLimits(settings.auth_login_limit_per_email, settings.auth_login_limit_per_address),
        )
        app[OUTBOX_RELAY] = outbox
        yield

    app.cleanup_ctx.append(domain)
    app.cleanup_ctx.append(outbox_sweep_context("users", OUTBOX_RELAY))
    app.add_routes(routes)
    return app
