"""`python -m ops.init_stores`: prepare the stores of a deployment, idempotently.

Creates the media bucket and every MongoDB index of auth and catalog, so a fresh
install (the Kubernetes init Job, or by hand) does not wait for the services' first
start. Safe to run any number of times. Reads the same `KINO_*` settings as the
services. (MinIO's bucket notification is configured with MinIO's own client,
`mc`, in the same Job.)
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from services.auth.repository import LoginAttemptRepository, UserRepository
from services.catalog.hosting.repository import VideoRepository
from services.catalog.trimming.repository import TrimRepository
from shared.config import SETTINGS_CONFIG, KinoSettings, MongoSettings, StorageSettings
from shared.mongo import mongo_database
from shared.outbox import ensure_outbox_index
from shared.storage import open_storage


class InitSettings(KinoSettings, MongoSettings, StorageSettings):
    model_config = SETTINGS_CONFIG

    #: Databases of the two services that own MongoDB data.
    auth_mongo_db: str = "kino_auth"
    catalog_mongo_db: str = "kino_catalog"
    auth_login_window_seconds: int = Field(default=300, ge=1)


async def init_stores(settings: InitSettings) -> None:
    async with open_storage(settings):
        pass  # opening creates the bucket when it is missing
    async with mongo_database(settings, "init-stores") as db:
        client = db.client
        auth, catalog = client[settings.auth_mongo_db], client[settings.catalog_mongo_db]
        users, videos, trims = (
            UserRepository(auth),
            VideoRepository(catalog),
            TrimRepository(catalog),
        )
        attempts = LoginAttemptRepository(auth, settings.auth_login_window_seconds)
        for repository in (users, attempts, videos, trims):
            await repository.ensure_indexes()
        for collection in (users.collection, videos.collection, trims.collection):
            await ensure_outbox_index(collection)


def main() -> None:
    settings = InitSettings()
    asyncio.run(init_stores(settings))
    print(
        f"stores ready: bucket {settings.s3_bucket}, databases "
        f"{settings.auth_mongo_db} and {settings.catalog_mongo_db}"
    )


if __name__ == "__main__":
    main()
