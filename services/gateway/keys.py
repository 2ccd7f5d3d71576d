"""Typed application keys of the gateway."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from services.gateway.settings import GatewaySettings
from services.gateway.token_verifier import JwksTokenVerifier
from shared.identity import IdentitySigner

SETTINGS: web.AppKey[GatewaySettings] = web.AppKey("settings", GatewaySettings)
HTTP_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("http_session", aiohttp.ClientSession)
TOKEN_VERIFIER: web.AppKey[JwksTokenVerifier] = web.AppKey("token_verifier", JwksTokenVerifier)
IDENTITY_SIGNER: web.AppKey[IdentitySigner] = web.AppKey("identity_signer", IdentitySigner)
#: `GET /openapi.json`'s body, built once at start.
OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)
