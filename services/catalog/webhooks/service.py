"""The webhooks domain: users' endpoints, and the deliveries an event makes for them."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.catalog.webhooks.address_guard import AddressGuard, UnsafeAddress
from services.catalog.webhooks.errors import TooManyWebhooks, UnsafeWebhookUrl, WebhookNotFound
from services.catalog.webhooks.repository import (
    Delivery,
    Endpoint,
    NewDelivery,
    WebhookRepository,
)
from services.catalog.webhooks.schemas import EVENT_TYPES, WebhookInput
from services.catalog.webhooks.signing import new_secret

#: The newest deliveries `GET …/deliveries` shows.
DELIVERIES_SHOWN = 100


@dataclass(frozen=True)
class Occurrence:
    """Something an owner's endpoints hear about: a webhook event and its payload data.

    `source_key` names the state change itself (`video.ready:<hash_id>:<attempt>`), so
    that the same change reported twice makes one delivery per endpoint.
    """

    owner: str
    event_type: str
    source_key: str
    timestamp: datetime
    data: dict[str, Any]


def new_endpoint_id() -> str:
    return "wh_" + secrets.token_urlsafe(12)


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(16)


def payload(occurrence: Occurrence) -> bytes:
    """The body sent on every attempt: `{"type", "timestamp", "data"}`."""
    timestamp = occurrence.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = {"type": occurrence.event_type, "timestamp": timestamp, "data": occurrence.data}
    return json.dumps(body, separators=(",", ":")).encode()


class WebhookService:
    def __init__(
        self, repository: WebhookRepository, guard: AddressGuard, *, max_per_user: int
    ) -> None:
        self._repository = repository
        self._guard = guard
        self._max_per_user = max_per_user

    async def create(self, user_id: str, data: WebhookInput) -> Endpoint:
        """A new endpoint with a new secret; its URL must be one catalog may call."""
        if await self._repository.count_of(user_id) >= self._max_per_user:
            raise TooManyWebhooks(self._max_per_user)
        try:
            await self._guard.check_url(data.url)
        except UnsafeAddress as exc:
            raise UnsafeWebhookUrl(str(exc)) from exc
        endpoint = Endpoint(
            id=new_endpoint_id(),
            user_id=user_id,
            url=data.url,
            event_types=list(data.event_types or EVENT_TYPES),
            secret=new_secret(),
            enabled=True,
            created_at=datetime.now(UTC),
        )
        await self._repository.insert_endpoint(endpoint)
        return endpoint

    async def endpoints(self, user_id: str) -> list[Endpoint]:
        return await self._repository.endpoints_of(user_id)

    async def delete(self, user_id: str, endpoint_id: str) -> None:
        if not await self._repository.delete_endpoint(endpoint_id, user_id):
            raise WebhookNotFound

    async def deliveries(self, user_id: str, endpoint_id: str) -> list[Delivery]:
        endpoint = await self._repository.get_endpoint(endpoint_id)
        if endpoint is None or endpoint.user_id != user_id:
            raise WebhookNotFound
        return await self._repository.deliveries_of(endpoint_id, DELIVERIES_SHOWN)

    async def record(self, occurrence: Occurrence) -> int:
        """Store one delivery per endpoint of the owner that receives the event (the
        worker sends them); returns how many endpoints that is."""
        endpoints = await self._repository.subscribed(occurrence.owner, occurrence.event_type)
        body = payload(occurrence)
        await self._repository.record(
            [
                NewDelivery(
                    endpoint_id=endpoint.id,
                    source_key=occurrence.source_key,
                    event_type=occurrence.event_type,
                    message_id=new_message_id(),
                    body=body,
                )
                for endpoint in endpoints
            ],
            datetime.now(UTC),
        )
        return len(endpoints)
