"""HTTP edges of the auth service: parse, call the service, render."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from services.auth.keys import AUTH_SERVICE, TOKEN_ISSUER
from services.auth.schemas import (
    RegistrationInput,
    SessionInput,
    TokenAttributes,
    TokenResource,
    UserAttributes,
    UserResource,
)
from shared.forms import MalformedBody, read_form
from shared.http import (
    IDENTITY,
    JSONAPI_CONTENT_TYPE,
    REQUEST_ID,
    JsonApiDocument,
    json_response,
    parse,
)

routes = web.RouteTableDef()

_JSON_TYPES = {"application/json", JSONAPI_CONTENT_TYPE}
_POINTER_BASE = "/data/attributes"


async def _attributes(request: web.Request) -> dict[str, Any]:
    """Form fields, a flat JSON object, or a JSON:API document's `data.attributes`."""
    if request.content_type in _JSON_TYPES:
        try:
            body = json.loads(await request.read() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedBody("Request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise MalformedBody("Request body must be a JSON object")
        data = body.get("data")
        if isinstance(data, dict) and isinstance(data.get("attributes"), dict):
            return dict(data["attributes"])
        return body
    return await read_form(request)


@routes.post("/api/v1/users/registration")
async def register(request: web.Request) -> web.Response:
    data = parse(RegistrationInput, await _attributes(request), _POINTER_BASE)
    user = await request.app[AUTH_SERVICE].register(data, correlation_id=request[REQUEST_ID])
    document = JsonApiDocument[UserResource](
        data=UserResource(id=user.id, attributes=UserAttributes(email=user.email))
    )
    return json_response(document, status=201, content_type=JSONAPI_CONTENT_TYPE)


@routes.post("/api/v1/users/session")
async def create_session(request: web.Request) -> web.Response:
    data = parse(SessionInput, await _attributes(request), _POINTER_BASE)
    token = await request.app[AUTH_SERVICE].sign_in(
        data, client_address=request[IDENTITY].client_address
    )
    document = JsonApiDocument[TokenResource](
        data=TokenResource(
            id=token.issued_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            attributes=TokenAttributes(access=token.access),
        )
    )
    return json_response(document, status=201, content_type=JSONAPI_CONTENT_TYPE)


@routes.get("/.well-known/jwks.json")
async def jwks(request: web.Request) -> web.Response:
    """The public keys that verify access tokens (fetched by the gateway)."""
    return web.json_response(
        request.app[TOKEN_ISSUER].jwks(), headers={"Cache-Control": "public, max-age=300"}
    )
