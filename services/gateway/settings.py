"""The gateway's settings (`KINO_*` environment variables)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, model_validator

from shared.config import SETTINGS_CONFIG, KinoSettings


class GatewaySettings(KinoSettings):
    model_config = SETTINGS_CONFIG

    http_port: int = Field(default=8080, ge=1, le=65535)
    #: `/health`, `/ready` and `/metrics`: probed and scraped here, never on the public
    #: port. 0 takes any free port (gateways that tests run in process).
    gateway_admin_port: int = Field(default=8090, ge=0, le=65535)
    auth_url: str = "http://127.0.0.1:8081"
    catalog_url: str = "http://127.0.0.1:8082"
    gateway_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    #: How long an upstream may stay silent before the gateway answers 504.
    gateway_upstream_timeout_seconds: float = Field(default=30.0, gt=0)
    #: The same for streamed uploads, whose upstream answers only after the last byte.
    gateway_upload_timeout_seconds: float = Field(default=3600.0, gt=0)
    #: Body limit of ordinary requests, and of the trimming upload (`POST /api/v1/users/videos`).
    gateway_max_body_bytes: int = Field(default=1024**2, ge=1)
    gateway_max_upload_bytes: int = Field(default=2 * 1024**3, ge=1)
    #: Least time between two JWKS fetches triggered by an unknown `kid`.
    gateway_jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    #: Proxies in front of the gateway whose `X-Forwarded-For` entries are trusted (0: none).
    gateway_trusted_proxy_hops: int = Field(default=0, ge=0)
    #: The object store as clients reach it, catalog's variables read again: the web
    #: app's Content-Security-Policy (`/app/`) admits its origin for the presigned
    #: uploads, thumbnails and playback files, which live there.
    s3_endpoint: str = "http://127.0.0.1:8333"
    s3_public_endpoint: str | None = None

    @property
    def storage_origin(self) -> str:
        """`scheme://host[:port]` of the store's public endpoint (`KINO_S3_PUBLIC_ENDPOINT`,
        else `KINO_S3_ENDPOINT`), as a Content-Security-Policy source."""
        parts = urlsplit(self.s3_public_endpoint or self.s3_endpoint)
        return f"{parts.scheme}://{parts.netloc}"

    @model_validator(mode="after")
    def _admin_port_is_its_own(self) -> GatewaySettings:
        if self.gateway_admin_port == self.http_port:
            raise ValueError("KINO_GATEWAY_ADMIN_PORT must differ from KINO_HTTP_PORT")
        return self
