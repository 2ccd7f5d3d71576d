"""Which upstream serves a public path, and what authentication it needs.

The table is the whole public surface besides the gateway's own `/health_check`
and `/`: seed 000 (`/video/...`) and seed 004 (`/api/v1/users/...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Upstream(Enum):
    AUTH = "auth"
    CATALOG = "catalog"


class Access(Enum):
    PUBLIC = "public"  # no token looked at
    OPTIONAL = "optional"  # anonymous allowed; a token, if sent, must be valid
    REQUIRED = "required"


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    upstream: Upstream
    access: Access
    #: Streamed uploads get the upload body limit and timeout.
    upload: bool = False
    #: Long-lived streams (Server-Sent Events): no upstream read timeout.
    stream: bool = False


def _route(
    pattern: str, upstream: Upstream, access: Access, *, upload: bool = False, stream: bool = False
) -> Route:
    return Route(re.compile(pattern), upstream, access, upload, stream)


ROUTES: tuple[Route, ...] = (
    _route(r"^/api/v1/users/(registration|session)$", Upstream.AUTH, Access.PUBLIC),
    _route(r"^/api/v1/users/videos$", Upstream.CATALOG, Access.REQUIRED, upload=True),
    _route(r"^/api/v1/users/events$", Upstream.CATALOG, Access.REQUIRED, stream=True),
    _route(r"^/api/v1/users/", Upstream.CATALOG, Access.REQUIRED),
    _route(r"^/video/(explore|watch)/?$", Upstream.CATALOG, Access.OPTIONAL),
    _route(r"^/video/user/[^/]+/?$", Upstream.CATALOG, Access.OPTIONAL),
    # Playlist links carry their own signature (players send no token).
    _route(r"^/video/hls/[^/]+/[^/]+$", Upstream.CATALOG, Access.PUBLIC),
    _route(r"^/video/", Upstream.CATALOG, Access.REQUIRED),
)


def match(path: str) -> Route | None:
    for route in ROUTES:
        if route.pattern.match(path):
            return route
    return None
