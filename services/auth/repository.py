"""MongoDB persistence of the auth service: users and login-attempt counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.auth.errors import EmailTaken
from shared.events import Envelope
from shared.mongo import Document
from shared.outbox import OUTBOX_FIELD, outbox_entry


@dataclass(frozen=True)
class User:
    id: str
    email: str
    password_hash: bytes


def email_key(email: str) -> str:
    """Emails are unique case-insensitively: the index is on this form."""
    return email.strip().lower()


class UserRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["users"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("email_key", unique=True)

    async def insert(self, user: User, events: list[Envelope]) -> None:
        """Insert the user with its events in the outbox; a taken email raises `EmailTaken`.

        The unique index decides races: of two concurrent registrations of one email,
        exactly one insert succeeds.
        """
        document: Document = {
            "_id": ObjectId(user.id),
            "email": user.email,
            "email_key": email_key(user.email),
            "password_hash": user.password_hash,
            "created_at": datetime.now(UTC),
            OUTBOX_FIELD: [outbox_entry(e) for e in events],
        }
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError as exc:
            raise EmailTaken from exc

    async def find_by_email(self, email: str) -> User | None:
        document = await self.collection.find_one({"email_key": email_key(email)})
        if document is None:
            return None
        return User(
            id=str(document["_id"]),
            email=document["email"],
            password_hash=document["password_hash"],
        )


@dataclass(frozen=True)
class WindowCount:
    #: The counter's document: the scope, the key and the window's start.
    window_id: str
    count: int
    retry_after_seconds: int


class LoginAttemptRepository:
    """Fixed-window counters shared by every auth replica (so limits hold when scaled)."""

    def __init__(self, db: AsyncDatabase[Document], window_seconds: int) -> None:
        self.collection = db["login_attempts"]
        self._window = window_seconds

    async def ensure_indexes(self) -> None:
        # Finished windows are removed by MongoDB's TTL monitor; counting never relies on it.
        await self.collection.create_index("expires_at", expireAfterSeconds=0)

    def _window_of(self, scope: str, key: str) -> tuple[str, datetime]:
        now = int(datetime.now(UTC).timestamp())
        start = now - now % self._window
        end = datetime.fromtimestamp(start + self._window, UTC)
        return f"{scope}:{key}:{start}", end

    async def count(self, scope: str, key: str) -> WindowCount:
        window_id, end = self._window_of(scope, key)
        document = await self.collection.find_one({"_id": window_id})
        return self._result(window_id, document, end)

    async def give_back(self, counted: WindowCount) -> None:
        """Undo one `increment` (in the window it counted in, if it still exists)."""
        await self.collection.update_one(
            {"_id": counted.window_id, "count": {"$gt": 0}}, {"$inc": {"count": -1}}
        )

    async def increment(self, scope: str, key: str) -> WindowCount:
        window_id, end = self._window_of(scope, key)
        update: dict[str, Any] = {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": end}}
        for _ in range(2):  # two racing upserts: the loser retries as an update
            try:
                document = await self.collection.find_one_and_update(
                    {"_id": window_id}, update, upsert=True, return_document=ReturnDocument.AFTER
                )
                return self._result(window_id, document, end)
            except DuplicateKeyError:
                continue
        raise RuntimeError("login attempt counter kept conflicting")

    @staticmethod
    def _result(window_id: str, document: Document | None, end: datetime) -> WindowCount:
        remaining = end - datetime.now(UTC)
        retry_after = max(1, int(remaining / timedelta(seconds=1)) + 1)
        return WindowCount(
            window_id=window_id,
            count=int(document["count"]) if document else 0,
            retry_after_seconds=retry_after,
        )
