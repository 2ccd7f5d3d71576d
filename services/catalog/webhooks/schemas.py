"""Request and response bodies of the webhooks API (JSON:API, like the trimming API)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.catalog.webhooks.address_guard import ALLOWED_SCHEMES

#: The events an endpoint can receive.
WebhookEventType = Literal["video.ready", "video.failed", "trim.done", "trim.failed"]
EVENT_TYPES: tuple[WebhookEventType, ...] = (
    "video.ready",
    "video.failed",
    "trim.done",
    "trim.failed",
)
MAX_URL_LENGTH = 2048


class WebhookInput(BaseModel):
    """`POST /api/v1/users/webhooks` attributes (a JSON:API document, flat JSON or a
    form; a form sends `event_types` comma-separated)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    url: str = Field(json_schema_extra={"format": "uri", "maxLength": MAX_URL_LENGTH})
    #: Absent: every event type.
    event_types: list[WebhookEventType] | None = Field(
        default=None, json_schema_extra={"minItems": 1, "uniqueItems": True}
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value:
            raise ValueError("can't be blank")
        if len(value) > MAX_URL_LENGTH:
            raise ValueError(f"is too long (maximum is {MAX_URL_LENGTH} characters)")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (a port out of range raises here)
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme not in ALLOWED_SCHEMES or not parts.hostname:
            raise ValueError("must be an http or https URL")
        return value

    @field_validator("event_types", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("event_types")
    @classmethod
    def _some(cls, value: list[WebhookEventType] | None) -> list[WebhookEventType] | None:
        if value is not None and not value:
            raise ValueError("can't be empty")
        return value if value is None else list(dict.fromkeys(value))


class WebhookAttributes(BaseModel):
    url: str
    event_types: list[WebhookEventType]
    #: False once the endpoint answered 410 Gone: it gets no more deliveries.
    enabled: bool
    created_at: datetime
    #: Only in the response that creates it: the signing secret (`whsec_…`).
    secret: str | None = None


class WebhookResource(BaseModel):
    id: str
    type: Literal["webhooks"] = "webhooks"
    attributes: WebhookAttributes


class DeliveryAttributes(BaseModel):
    event_type: WebhookEventType
    #: The `webhook-id` header: the same on every attempt of one message.
    message_id: str
    attempt: int
    #: `pending` (the next attempt, not made yet), `succeeded` or `failed`.
    status: Literal["pending", "succeeded", "failed"]
    response_code: int | None = None
    error: str | None = None
    #: When the attempt was made (or, pending, when it is due).
    time: datetime


class DeliveryResource(BaseModel):
    id: str
    type: Literal["webhook-deliveries"] = "webhook-deliveries"
    attributes: DeliveryAttributes
