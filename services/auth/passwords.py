"""bcrypt password hashing, run in a worker thread: a hash at cost 12 takes ~0.25 s.

bcrypt reads at most 72 bytes of a password. Kino bounds passwords rather than
pre-hashing them: registration refuses a longer one (422, `schemas.py`), and since no
stored password is longer, sign-in answers a longer one as a wrong password (401).
"""

from __future__ import annotations

import asyncio

import bcrypt

#: The most of a password bcrypt reads; registration refuses longer ones.
BCRYPT_MAX_BYTES = 72


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self._rounds = rounds
        # Compared against when the email is unknown, so both paths cost one bcrypt check
        # and the response time does not tell whether an account exists.
        self._decoy = bcrypt.hashpw(b"kino-decoy-password", bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> bytes:
        return await asyncio.to_thread(
            bcrypt.hashpw, password.encode(), bcrypt.gensalt(self._rounds)
        )

    async def verify(self, password: str, hashed: bytes | None) -> bool:
        secret = password.encode()
        if len(secret) > BCRYPT_MAX_BYTES:
            # No stored password is this long; checking the decoy keeps the time alike.
            secret, hashed = b"", None
        ok = await asyncio.to_thread(bcrypt.checkpw, secret, hashed or self._decoy)
        return ok and hashed is not None
