"""The catalog service's settings (`KINO_*` environment variables)."""

from __future__ import annotations

from pydantic import Field

from shared.config import (
    SETTINGS_CONFIG,
    BrokerSettings,
    KinoSettings,
    MongoSettings,
    StorageSettings,
)


class CatalogSettings(KinoSettings, MongoSettings, BrokerSettings, StorageSettings):
    model_config = SETTINGS_CONFIG

    http_port: int = Field(default=8082, ge=1, le=65535)
    mongo_db: str = "kino_catalog"
