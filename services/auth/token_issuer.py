"""Access tokens: EdDSA (Ed25519) JWTs with `sub`, `iat`, `exp` and a `kid` header.

The public key is published as a JWKS so the gateway verifies tokens without
sharing a secret; `kid` is the key's RFC 7638 thumbprint, so a rotated key gets
a new `kid` and the gateway refetches the set when it meets one it does not know.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "EdDSA"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def generate_private_key_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class TokenIssuer:
    def __init__(self, private_key_pem: str, ttl_seconds: int) -> None:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("KINO_AUTH_SIGNING_KEY must be an Ed25519 private key (PEM)")
        self._key = key
        self._ttl = ttl_seconds
        raw_public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        public_jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw_public)}
        # RFC 7638: hash of the required members, sorted, without whitespace.
        canonical = json.dumps(public_jwk, sort_keys=True, separators=(",", ":")).encode()
        self.kid = _b64url(hashlib.sha256(canonical).digest())
        self._jwk = {**public_jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def issue(self, user_id: str) -> tuple[str, int]:
        """A signed token for the user, and its issue time."""
        now = int(time.time())
        claims = {"sub": user_id, "iat": now, "exp": now + self._ttl}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid}), now

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._jwk]}
