"""MongoDB persistence of the catalog service."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document


class UserDirectory:
    """The users catalog knows of, learned from `user.registered` (auth owns the accounts)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["users"]

    async def remember(self, user_id: str) -> None:
        """Idempotent: a redelivered event leaves one record."""
        await self.collection.update_one(
            {"_id": user_id},
            {"$setOnInsert": {"registered_at": datetime.now(UTC)}},
            upsert=True,
        )

    async def exists(self, user_id: str) -> bool:
        return await self.collection.count_documents({"_id": user_id}, limit=1) > 0
