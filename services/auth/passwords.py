"""bcrypt password hashing, run in a worker thread: a hash at cost 12 takes ~0.25 s."""

from __future__ import annotations

import asyncio

import bcrypt


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
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed or self._decoy)
        return ok and hashed is not None
