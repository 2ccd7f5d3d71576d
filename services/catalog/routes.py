"""HTTP edges of the catalog.

Every endpoint of both seeds that catalog owns is routed here. Until its
capability lands (hosting and trimming issues) it answers 501 in its surface's
error style rather than inventing data.
"""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()

_PENDING_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("GET", "/video/explore/"),
    ("GET", "/video/upload/"),
    ("GET", "/video/upload/config"),
    ("GET", "/video/my/"),
    ("PUT", "/video/my/{hash_id}"),
    ("DELETE", "/video/my/{hash_id}"),
    ("GET", "/video/user/{user_id}"),
    ("GET", "/video/watch/"),
    ("GET", "/api/v1/users/videos"),
    ("POST", "/api/v1/users/videos"),
    ("GET", "/api/v1/users/requests"),
    ("POST", "/api/v1/users/requests/{id}/restart"),
)


async def not_implemented(_: web.Request) -> web.Response:
    raise web.HTTPNotImplemented(reason="Not implemented yet")


for method, path in _PENDING_ENDPOINTS:
    routes.route(method, path)(not_implemented)
