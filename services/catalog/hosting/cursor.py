"""Opaque, tamper-proof keyset cursors for paginated listings.

A cursor names the last item of a page by its sort key (`listing_time`, `hash_id`)
and the listing it belongs to, signed with an HMAC so a forged or edited cursor is
refused instead of steering a query. Keyset (not offset) pagination keeps pages
stable while new videos arrive: they sort before any issued cursor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from services.catalog.errors import InvalidCursor


@dataclass(frozen=True)
class PagePosition:
    listing_time: datetime
    hash_id: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, secret: str) -> None:
        # A key of its own, derived from the service secret: cursors are not identities.
        self._key = hashlib.sha256(b"kino-cursor:" + secret.encode()).digest()

    def _mac(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest()[:16])

    def encode(self, position: PagePosition, listing: str) -> str:
        payload = json.dumps(
            {"t": position.listing_time.isoformat(), "h": position.hash_id, "l": listing},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{self._mac(payload)}"

    def decode(self, cursor: str, listing: str) -> PagePosition:
        try:
            encoded, mac = cursor.split(".")
            payload = _unb64(encoded)
        except ValueError as exc:
            raise InvalidCursor("Invalid cursor") from exc
        # Compared as bytes: a str with non-ASCII characters makes compare_digest raise.
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise InvalidCursor("Invalid cursor")
        data = json.loads(payload)
        if data.get("l") != listing:
            raise InvalidCursor("Cursor belongs to another listing")
        return PagePosition(datetime.fromisoformat(data["t"]), str(data["h"]))
