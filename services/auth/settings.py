"""The auth service's settings (`KINO_*` environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from shared.config import SETTINGS_CONFIG, BrokerSettings, KinoSettings, MongoSettings


class AuthSettings(KinoSettings, MongoSettings, BrokerSettings):
    model_config = SETTINGS_CONFIG

    http_port: int = Field(default=8081, ge=1, le=65535)
    mongo_db: str = "kino_auth"
    #: PEM of the Ed25519 private key that signs access tokens. Required in
    #: production; in development a throwaway key is generated at start.
    auth_signing_key: SecretStr | None = None
    auth_token_ttl_seconds: int = Field(default=3600, ge=60)
    auth_bcrypt_rounds: int = Field(default=12, ge=12, le=16)
    #: Failed sign-ins allowed per email and per client address, per window; successful
    #: ones are never limited (`AuthService.sign_in`).
    auth_login_limit_per_email: int = Field(default=5, ge=1)
    auth_login_limit_per_address: int = Field(default=30, ge=1)
    auth_login_window_seconds: int = Field(default=300, ge=1)

    @model_validator(mode="after")
    def _signing_key_required_in_production(self) -> AuthSettings:
        if self.is_production and self.auth_signing_key is None:
            raise ValueError("KINO_AUTH_SIGNING_KEY is required when KINO_ENV=production")
        return self
