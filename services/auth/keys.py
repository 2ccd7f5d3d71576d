"""Typed application keys of the auth service."""

from __future__ import annotations

from aiohttp import web

from services.auth.service import AuthService
from services.auth.token_issuer import TokenIssuer
from shared.outbox import OutboxRelay

AUTH_SERVICE: web.AppKey[AuthService] = web.AppKey("auth_service", AuthService)
TOKEN_ISSUER: web.AppKey[TokenIssuer] = web.AppKey("token_issuer", TokenIssuer)
OUTBOX_RELAY: web.AppKey[OutboxRelay] = web.AppKey("outbox_relay", OutboxRelay)
