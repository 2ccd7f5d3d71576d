"""HTTP edges of the trimming API (seed 004).

Routed now so that every seed path reaches catalog; until the trimming capability
lands each answers 501 in the JSON:API error style rather than inventing data.
"""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()


async def not_implemented(_: web.Request) -> web.Response:
    raise web.HTTPNotImplemented(reason="Not implemented yet")


for _method, _path in (
    ("GET", "/api/v1/users/videos"),
    ("POST", "/api/v1/users/videos"),
    ("GET", "/api/v1/users/requests"),
    ("POST", "/api/v1/users/requests/{id}/restart"),
):
    routes.route(_method, _path)(not_implemented)
