"""The users catalog knows of: learned from auth's `user.registered` (auth owns the
accounts), so that `/video/user/{user_id}` can tell an unknown user (404) from one
without videos."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from shared.events import Envelope, UserRegistered
from shared.messaging import Subscription
from shared.mongo import Document


class UserDirectory:
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


def users_subscription(users: UserDirectory) -> Subscription:
    subscription = Subscription("users")

    @subscription.on(UserRegistered)
    async def user_registered(event: UserRegistered, _: Envelope) -> None:
        await users.remember(event.user_id)

    return subscription
