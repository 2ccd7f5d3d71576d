"""The catalog service's settings (`KINO_*` environment variables)."""

from __future__ import annotations

import json

from pydantic import Field, NonNegativeFloat, field_validator

from shared.config import (
    SETTINGS_CONFIG,
    BrokerSettings,
    KinoSettings,
    MongoSettings,
    StorageSettings,
)

DEFAULT_VIDEO_TYPES = (
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/x-matroska",
    "video/x-msvideo",
    "video/mpeg",
    "video/ogg",
    "video/3gpp",
)


class CatalogSettings(KinoSettings, MongoSettings, BrokerSettings, StorageSettings):
    model_config = SETTINGS_CONFIG

    http_port: int = Field(default=8082, ge=1, le=65535)
    mongo_db: str = "kino_catalog"
    #: Largest file a client may upload through the presigned POST policy.
    upload_max_size_bytes: int = Field(default=2 * 1024**3, ge=1)
    #: Content types a client may upload (JSON list in the environment).
    upload_valid_file_types: tuple[str, ...] = DEFAULT_VIDEO_TYPES
    #: How long upload instructions stay valid (a resumable upload too); at most the
    #: 7 days an S3 presigned URL may last.
    upload_policy_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    #: Part size of resumable (multipart) uploads; raised for a file that would need
    #: more than S3's 10 000 parts. S3 refuses parts under 5 MiB but the last.
    upload_part_size_bytes: int = Field(default=16 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    #: How often the upload reconciler lists the incoming prefix.
    upload_reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    #: Fair share: media jobs one owner may have at the transcoder at once (hosting and
    #: trimming together); the others wait, oldest first.
    jobs_per_owner_in_flight: int = Field(default=2, ge=1)
    #: A job the transcoder started that reports no progress for this long is lost: it
    #: is queued again once, then failed `stalled`.
    job_stall_seconds: float = Field(default=300.0, gt=0)

    @property
    def stall_sweep_interval_seconds(self) -> float:
        """Stalls are found within a quarter of the stall time (at most a minute late)."""
        return min(max(self.job_stall_seconds / 4, 0.25), 60.0)

    #: How long a failed upload keeps its file (for `POST /video/my/{hash_id}/retry`).
    failed_source_retention_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    #: Lifetime of presigned watch and thumbnail URLs.
    presigned_url_ttl_seconds: int = Field(default=3600, ge=60)
    #: Where clients reach the gateway (`https://videos.example.org`): HLS playlist links
    #: (`hls_url`) start with it. Empty: `http://` and the Host the client asked for.
    public_url: str = ""
    #: Videos per page of `/video/explore/` and `/video/user/{id}`.
    page_size: int = Field(default=20, ge=1, le=100)
    #: MinIO's bucket-notification exchange (compose/Kubernetes configure MinIO to use it).
    storage_events_exchange: str = "kino.storage"
    #: Largest source a trimming upload may stream (`POST /api/v1/users/videos`).
    trim_max_upload_bytes: int = Field(default=2 * 1024**3, ge=1)
    #: Multipart part size of streamed uploads: memory per upload is about two parts.
    trim_upload_part_size: int = Field(default=8 * 1024**2, ge=5 * 1024**2)
    #: Webhooks: delays before each retry of a failed delivery (a JSON list in the
    #: environment); Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    webhook_retry_schedule_seconds: tuple[NonNegativeFloat, ...] = (
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        36000,
    )
    #: How often the delivery worker looks for due deliveries.
    webhook_delivery_interval_seconds: float = Field(default=1.0, gt=0)
    #: How long one delivery request may take.
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    #: Endpoints one user may register.
    webhook_max_endpoints_per_user: int = Field(default=20, ge=1)
    #: Whether webhook URLs may point at loopback, private, link-local or metadata
    #: addresses (`KINO_WEBHOOKS_ALLOW_PRIVATE`). Unset: yes in development (local
    #: receivers), no in production.
    webhooks_allow_private: bool | None = None
    #: Live events (`GET /api/v1/users/events`): how long the log keeps an event for
    #: replay after a reconnection (`Last-Event-ID`).
    event_log_retention_seconds: int = Field(default=86400, ge=1)
    #: A comment line on an idle stream this often, so proxies keep it open.
    event_stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    #: How often an open stream reads the log.
    event_stream_poll_seconds: float = Field(default=0.3, gt=0)

    @property
    def event_log_sweep_interval_seconds(self) -> float:
        """Expired events go within a tenth of the retention (at most 5 minutes late)."""
        return min(max(self.event_log_retention_seconds / 10, 1.0), 300.0)

    @field_validator("webhook_retry_schedule_seconds", mode="before")
    @classmethod
    def _json_list(cls, value: object) -> object:
        """The environment's JSON list also when given as a string in code (tests)."""
        return json.loads(value) if isinstance(value, str) else value

    @property
    def webhook_private_targets_allowed(self) -> bool:
        if self.webhooks_allow_private is None:
            return not self.is_production
        return self.webhooks_allow_private
