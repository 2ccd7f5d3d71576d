"""Verifies access tokens against auth's JWKS: cached, refetched on an unknown `kid`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt
import structlog

log = structlog.get_logger(__name__)

ALGORITHMS = ["EdDSA"]


class InvalidToken(Exception):
    pass


class JwksTokenVerifier:
    def __init__(
        self, session: aiohttp.ClientSession, jwks_url: str, *, min_refresh_seconds: float
    ) -> None:
        self._session = session
        self._url = jwks_url
        self._min_refresh = min_refresh_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> str:
        """The token's subject (user id); `InvalidToken` for anything not signed by auth."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from exc
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ALGORITHMS:
            raise InvalidToken("token has no kid or an unexpected algorithm")
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("token subject is not a user id")
        return subject

    async def ensure_keys(self) -> bool:
        """Fetch the key set if none is cached yet (the readiness check)."""
        if not self._keys:
            await self._refresh(force=True)
        return bool(self._keys)

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys:
            await self._refresh(force=False)
        try:
            return self._keys[kid]
        except KeyError:
            raise InvalidToken("token signed by an unknown key") from None

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            # Unknown kids must not let a caller make us hammer auth.
            if not force and time.monotonic() - self._fetched_at < self._min_refresh:
                return
            try:
                async with self._session.get(self._url, raise_for_status=True) as response:
                    key_set = jwt.PyJWKSet.from_dict(await response.json())
            except (aiohttp.ClientError, TimeoutError, jwt.PyJWTError, ValueError) as exc:
                log.warning("could not fetch the JWKS", url=self._url, error=str(exc))
                return
            self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
            self._fetched_at = time.monotonic()
