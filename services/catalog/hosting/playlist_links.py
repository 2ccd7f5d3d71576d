"""Signed, expiring links to a video's HLS playlists.

`GET /video/watch/` hands out `hls_url` only to whom may watch (a private video's
owner); the playlists it leads to, and the rendition files they name, must not outlive
that or reach anyone else. Players fetch playlists with no `Authorization` header, so
the link itself carries the right: `expires` (Unix seconds) and `signature`, an
HMAC-SHA256 of the video's id and `expires` under a key derived from the internal
secret. One signature serves the master playlist and every media playlist of the
video (the master names them relatively, with the same query); catalog checks it on
every playlist request, and the media playlists it serves name the rendition file by
a presigned storage URL that expires when the link does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from services.catalog.errors import PlaylistLinkRefused


@dataclass(frozen=True)
class PlaylistLink:
    expires: int
    signature: str

    @property
    def query(self) -> str:
        return f"expires={self.expires}&signature={self.signature}"


class PlaylistLinks:
    def __init__(self, secret: str) -> None:
        # A key of its own, derived from the service secret: links are not identities.
        self._key = hashlib.sha256(b"kino-playlist-link:" + secret.encode()).digest()

    def sign(self, hash_id: str, expires_at: datetime) -> PlaylistLink:
        expires = int(expires_at.timestamp())
        return PlaylistLink(expires, self._mac(hash_id, expires))

    def check(self, hash_id: str, expires: str | None, signature: str | None, now: datetime) -> int:
        """The link's expiry (Unix seconds) if it is genuine and current; else
        `PlaylistLinkRefused` saying which."""
        if expires is None or signature is None or not expires.isdigit() or len(expires) > 12:
            raise PlaylistLinkRefused("the playlist link is not signed")
        seconds = int(expires)
        # Compared as bytes: a str with non-ASCII characters makes compare_digest raise.
        if not hmac.compare_digest(signature.encode(), self._mac(hash_id, seconds).encode()):
            raise PlaylistLinkRefused("the playlist link's signature is wrong")
        if seconds <= now.timestamp():
            raise PlaylistLinkRefused("the playlist link has expired")
        return seconds

    def _mac(self, hash_id: str, expires: int) -> str:
        payload = f"{hash_id}\n{expires}".encode()
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
