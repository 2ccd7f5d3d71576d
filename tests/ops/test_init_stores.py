"""`python -m ops.init_stores` prepares bucket and indexes, and can run again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from minio import Minio
from pymongo import AsyncMongoClient

from devstack.stores import StoreEndpoints
from ops.init_stores import InitSettings, init_stores


async def test_creates_bucket_and_indexes_and_is_idempotent(
    make_settings: Callable[..., Any], stores: StoreEndpoints, s3: Minio
) -> None:
    suffix = uuid.uuid4().hex[:8]
    settings = make_settings(
        InitSettings,
        s3_bucket=f"kino-init-{suffix}",
        auth_mongo_db=f"auth_{suffix}",
        catalog_mongo_db=f"catalog_{suffix}",
    )
    await init_stores(settings)
    await init_stores(settings)  # a second run changes nothing and does not fail

    assert s3.bucket_exists(settings.s3_bucket)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stores.mongo_url)
    try:
        users = await client[settings.auth_mongo_db]["users"].index_information()
        assert users["email_key_1"]["unique"] is True
        assert "outbox.at_1" in users
        videos = await client[settings.catalog_mongo_db]["videos"].index_information()
        assert "upload_key_1" in videos
        assert "outbox.at_1" in videos
        trims = await client[settings.catalog_mongo_db]["trims"].index_information()
        assert "user_id_1_created_at_-1" in trims
    finally:
        await client.drop_database(settings.auth_mongo_db)
        await client.drop_database(settings.catalog_mongo_db)
        await client.close()
        s3.remove_bucket(settings.s3_bucket)
