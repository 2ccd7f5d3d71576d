"""The gateway's signed identity assertion, and its verification in internal services.

The gateway verifies the caller's access token, then puts a short-lived HS256 JWT
in the `X-Kino-Identity` header of every request it forwards: `sub` (the user id,
absent for anonymous callers), `addr` (the client address), `rid` (the request
id), audience `kino-internal`. Internal services accept a request only with a
valid assertion, so a request that did not pass the gateway — or a client-sent
identity header — never carries an identity. The key is `KINO_INTERNAL_SECRET`,
shared by the gateway and the services and nobody else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

IDENTITY_HEADER = "X-Kino-Identity"
_AUDIENCE = "kino-internal"
_ISSUER = "kino-gateway"
_ALGORITHM = "HS256"


class InvalidIdentity(Exception):
    """The request carries no valid gateway assertion."""


@dataclass(frozen=True)
class Identity:
    """Who the gateway says is calling. `user_id` None means anonymous."""

    user_id: str | None
    client_address: str | None = None
    request_id: str | None = None


class IdentitySigner:
    def __init__(self, secret: str, ttl_seconds: int = 60) -> None:
        self._secret = secret
        self._ttl = ttl_seconds

    def sign(self, identity: Identity) -> str:
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": _ISSUER,
            "aud": _AUDIENCE,
            "iat": now,
            "exp": now + self._ttl,
        }
        if identity.user_id is not None:
            claims["sub"] = identity.user_id
        if identity.client_address is not None:
            claims["addr"] = identity.client_address
        if identity.request_id is not None:
            claims["rid"] = identity.request_id
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)


class IdentityVerifier:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def verify(self, assertion: str | None) -> Identity:
        if not assertion:
            raise InvalidIdentity("missing gateway identity assertion")
        try:
            claims = jwt.decode(
                assertion,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                issuer=_ISSUER,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidIdentity(str(exc)) from exc
        sub, addr, rid = claims.get("sub"), claims.get("addr"), claims.get("rid")
        return Identity(
            user_id=sub if isinstance(sub, str) else None,
            client_address=addr if isinstance(addr, str) else None,
            request_id=rid if isinstance(rid, str) else None,
        )
