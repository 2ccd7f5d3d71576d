"""Settings shared by every service: read from `KINO_*` environment variables.

Each service composes the mixins it needs into its own `Settings` class (see
`services/<name>/settings.py`). Secrets have development defaults so that
`make run` works with no configuration; every such default starts with
`DEV_SECRET_MARKER`, and in production mode (`KINO_ENV=production`) a secret that
still carries the marker, is empty, or is a well-known default credential makes
the settings refuse to build, so a service cannot start with it.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_MARKER = "kino-dev-"

#: Credentials that ship with the stores' images and must never reach production.
_WELL_KNOWN_CREDENTIALS = frozenset({"guest", "minioadmin", "admin", "password", "secret"})


class DevelopmentSecretInProduction(ValueError):
    """Raised when production settings still hold a development secret."""


def is_development_secret(value: str) -> bool:
    return not value or value.startswith(DEV_SECRET_MARKER) or value in _WELL_KNOWN_CREDENTIALS


#: Every settings class carries the same config, so that a service class combining
#: several of them keeps the `KINO_` prefix whatever the order of its bases.
SETTINGS_CONFIG = SettingsConfigDict(env_prefix="KINO_", extra="ignore", frozen=True)


class KinoSettings(BaseSettings):
    """Base of every service's settings."""

    model_config = SETTINGS_CONFIG

    env: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    #: Key of the gateway's signed identity assertion (see `shared.identity`).
    internal_secret: SecretStr = SecretStr(
        DEV_SECRET_MARKER + "internal-secret-change-me-in-production"
    )
    #: How long the process waits for in-flight work after SIGTERM.
    shutdown_grace_seconds: float = Field(default=30.0, gt=0)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def development_secrets(self) -> list[str]:
        """Names of secret settings that still hold development values."""
        found = [
            name
            for name, value in self
            if isinstance(value, SecretStr) and is_development_secret(value.get_secret_value())
        ]
        for name, value in self:
            if name.endswith("_url") and isinstance(value, str):
                password = urlsplit(value).password
                if password is not None and is_development_secret(password):
                    found.append(name)
        return found

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> KinoSettings:
        if self.is_production:
            weak = self.development_secrets()
            if weak:
                raise DevelopmentSecretInProduction(
                    "KINO_ENV=production refuses development or default secrets in: "
                    + ", ".join("KINO_" + name.upper() for name in weak)
                )
        return self


class MongoSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "kino"


class BrokerSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    amqp_exchange: str = "kino.events"
    #: Prefix of every queue this deployment declares (`<prefix>.<service>.<purpose>`).
    amqp_queue_prefix: str = "kino"
    amqp_retry_delay_seconds: float = Field(default=5.0, gt=0)
    #: Deliveries of one message that may fail before it is dead-lettered.
    amqp_max_attempts: int = Field(default=5, ge=1)
    amqp_prefetch: int = Field(default=16, ge=1)


class StorageSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    s3_endpoint: str = "http://127.0.0.1:8333"
    #: Endpoint put into presigned URLs handed to clients (defaults to `s3_endpoint`).
    s3_public_endpoint: str | None = None
    s3_access_key: str = "kinodev"
    s3_secret_key: SecretStr = SecretStr(DEV_SECRET_MARKER + "s3-secret")
    s3_region: str = "us-east-1"
    s3_bucket: str = "kino-media"
