"""HTTP edges of the auth service: parse, call the service, render."""

from __future__ import annotations

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
from shared.http import (
    IDENTITY,
    JSONAPI_CONTENT_TYPE,
    REQUEST_ID,
    JsonApiDocument,
    json_response,
    parse,
    read_attributes,
)

routes = web.RouteTableDef()

_POINTER_BASE = "/data/attributes"


@routes.post("/api/v1/users/registration")
async def register(request: web.Request) -> web.Response:
    data = parse(RegistrationInput, await read_attributes(request), _POINTER_BASE)
    user = await request.app[AUTH_SERVICE].register(data, correlation_id=request[REQUEST_ID])
    document = JsonApiDocument[UserResource](
        data=UserResource(id=user.id, attributes=UserAttributes(email=user.email))
    )
    return json_response(document, status=201, content_type=JSONAPI_CONTENT_TYPE)


@routes.post("/api/v1/users/session")
async def create_session(request: web.Request) -> web.Response:
    data = parse(SessionInput, await read_attributes(request), _POINTER_BASE)
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
