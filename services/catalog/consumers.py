"""Event edges of the catalog: thin handlers over the repositories."""

from __future__ import annotations

from services.catalog.repository import UserDirectory
from shared.events import Envelope, UserRegistered
from shared.messaging import Subscription


def user_subscription(users: UserDirectory) -> Subscription:
    subscription = Subscription("users")

    @subscription.on(UserRegistered)
    async def user_registered(event: UserRegistered, _: Envelope) -> None:
        await users.remember(event.user_id)

    return subscription
