"""MongoDB through PyMongo's asyncio API (`AsyncMongoClient`, the successor of motor)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.config import MongoSettings

Document = dict[str, Any]


def new_id() -> str:
    """A new document id as the text the APIs show: an ObjectId (unique, time-ordered)."""
    return str(ObjectId())


def document_id(text: str) -> ObjectId | None:
    """The ObjectId `text` names, or None when it names none: a lookup by an id a client
    made up finds nothing instead of failing."""
    try:
        return ObjectId(text)
    except (InvalidId, TypeError):
        return None


@contextlib.asynccontextmanager
async def mongo_database(
    settings: MongoSettings, app_name: str
) -> AsyncIterator[AsyncDatabase[Document]]:
    """The service's database; the client is closed on exit.

    Timeouts are short so that a store that is down shows in `/ready` and as a
    failed request instead of a hung one.
    """
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongo_url,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
    )
    try:
        yield client[settings.mongo_db]
    finally:
        await client.close()


async def ping(db: AsyncDatabase[Document]) -> bool:
    try:
        await db.client.admin.command("ping")
    except Exception:
        return False
    return True
