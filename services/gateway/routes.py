"""The gateway's public edge: its own health check, then authenticate-and-forward."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from services.gateway.keys import (
    HTTP_SESSION,
    IDENTITY_SIGNER,
    OPENAPI_DOCUMENT,
    SETTINGS,
    TOKEN_VERIFIER,
)
from services.gateway.proxy import Forwarding, Limits, forward
from services.gateway.routing import Access, Route, Upstream, match
from services.gateway.schemas import HealthCheck
from services.gateway.settings import GatewaySettings
from services.gateway.static_files import STATIC_DIR
from services.gateway.token_verifier import InvalidToken
from shared.http import REQUEST_ID, json_response, style_for_path
from shared.identity import Identity

routes = web.RouteTableDef()


@routes.get("/health_check")
async def health_check(_: web.Request) -> web.Response:
    return json_response(HealthCheck())


@routes.get("/")
async def redirect_to_health_check(_: web.Request) -> web.Response:
    raise web.HTTPTemporaryRedirect("/health_check")


@routes.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json")


#: The API reference page; its scripts and styles are the gateway's own static files.
DOCS_PAGE = STATIC_DIR / "docs.html"
#: Only the gateway's own scripts; Swagger UI sets inline styles and draws data: images.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@routes.get("/docs")
async def api_docs(_: web.Request) -> web.FileResponse:
    return web.FileResponse(
        DOCS_PAGE,
        headers={"Content-Security-Policy": DOCS_POLICY, "Content-Type": "text/html"},
    )


#: The web app (`static/app/`, README "The web app"): one page whose views are hash
#: routes (`#/explore`, `#/watch/<user_id>/<hash_id>`, …, see `static/app/main.js`), its
#: modules and styles served from `/static/app/`.
APP_PAGE = STATIC_DIR / "app" / "index.html"


def app_policy(storage_origin: str) -> str:
    """The web app's Content-Security-Policy: only the gateway's own scripts and styles
    (nothing inline, no eval); the store's origin for what presigned URLs point at
    (uploads, thumbnails, playback files, clips) and `blob:` for the player's Media
    Source buffers and a local file previewed before a trim. hls.js runs without its
    worker, so no worker may start."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' {storage_origin}; media-src 'self' {storage_origin} blob:; "
        f"connect-src 'self' {storage_origin}; worker-src 'none'; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


# `/app` and `/app/` only (a page, not an API operation: no OpenAPI entry); any other
# path under /app goes on to the routing table's 404.
@routes.get("/app{slash:/?}")
async def web_app(request: web.Request) -> web.FileResponse:
    if not request.match_info["slash"]:
        raise web.HTTPPermanentRedirect("/app/")
    return web.FileResponse(
        APP_PAGE,
        headers={
            "Content-Security-Policy": app_policy(request.app[SETTINGS].storage_origin),
            "Content-Type": "text/html",
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, '' for any other form."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


def client_address(request: web.Request, trusted_hops: int) -> str:
    """The caller's address; with trusted proxies in front, taken from `X-Forwarded-For`."""
    remote = request.remote or "unknown"
    if trusted_hops == 0:
        return remote
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    return hops[-trusted_hops] if len(hops) >= trusted_hops else remote


def _upstream_url(settings: GatewaySettings, route: Route, request: web.Request) -> str:
    base = settings.auth_url if route.upstream is Upstream.AUTH else settings.catalog_url
    return base.rstrip("/") + request.rel_url.raw_path


def _limits(settings: GatewaySettings, route: Route) -> Limits:
    read: float | None = (
        settings.gateway_upload_timeout_seconds
        if route.upload
        else settings.gateway_upstream_timeout_seconds
    )
    if route.stream:
        # An event stream is quiet between events and heartbeats for as long as the
        # client listens: a read timeout would cut it (connecting is still bounded).
        read = None
    return Limits(
        max_body_bytes=(
            settings.gateway_max_upload_bytes if route.upload else settings.gateway_max_body_bytes
        ),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=settings.gateway_connect_timeout_seconds, sock_read=read
        ),
    )


async def proxy(request: web.Request) -> web.StreamResponse:
    style = style_for_path(request.path)
    route = match(request.path)
    if route is None:
        return style.error(404, "Not Found")
    user_id: str | None = None
    if route.access is not Access.PUBLIC:
        token = bearer_token(request)
        if (token is None and route.access is Access.REQUIRED) or token == "":
            return style.unauthenticated()
        if token:
            try:
                user_id = await request.app[TOKEN_VERIFIER].verify(token)
            except InvalidToken:
                return style.unauthenticated()
    settings = request.app[SETTINGS]
    address = client_address(request, settings.gateway_trusted_proxy_hops)
    assertion = request.app[IDENTITY_SIGNER].sign(
        Identity(user_id=user_id, client_address=address, request_id=request[REQUEST_ID])
    )
    return await forward(
        request,
        request.app[HTTP_SESSION],
        _upstream_url(settings, route, request),
        Forwarding(assertion, request[REQUEST_ID], address, request.host, request.scheme),
        _limits(settings, route),
        style,
    )


# Any path, newlines (`%0A`) included: each one reaches the routing table's answer.
routes.route("*", r"/{tail:[\s\S]*}")(proxy)
