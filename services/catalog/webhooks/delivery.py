"""The delivery worker: sends due deliveries, signed, and records each attempt.

Run by a periodic task on every catalog replica; the state lives in MongoDB, so a
restart loses nothing (a lease held by a replica that died just expires). An attempt
that got a 2xx succeeded; 410 Gone disables the endpoint; anything else (another
status, a timeout, a refused address) is retried on the schedule (Standard Webhooks':
5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), later when the receiver's `Retry-After` asks
for more, and the delivery fails after the last attempt. Every attempt of a delivery
carries the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog

from services.catalog.webhooks import signing
from services.catalog.webhooks.address_guard import AddressGuard
from services.catalog.webhooks.repository import (
    Attempt,
    Delivery,
    DeliveryStatus,
    WebhookRepository,
)

log = structlog.get_logger(__name__)

#: The longest `Retry-After` honoured (a receiver cannot park a delivery for ever).
MAX_RETRY_AFTER_SECONDS = 24 * 3600
#: Error texts are kept short in the attempt record.
MAX_ERROR_CHARS = 300
USER_AGENT = "Kino-Webhooks/1"


@dataclass(frozen=True)
class DeliveryPolicy:
    #: Delays before the 2nd, 3rd, … attempt; attempts in all: one more than its length.
    retry_schedule: Sequence[float]
    #: How long a claimed delivery is held: longer than one request can take.
    lease: timedelta
    #: Deliveries sent at once per round (per replica).
    batch: int


@dataclass(frozen=True)
class _Outcome:
    response_code: int | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.response_code is not None and 200 <= self.response_code < 300

    @property
    def gone(self) -> bool:
        return self.response_code == 410


class WebhookDeliverer:
    def __init__(
        self,
        repository: WebhookRepository,
        session: aiohttp.ClientSession,
        guard: AddressGuard,
        policy: DeliveryPolicy,
    ) -> None:
        self._repository = repository
        self._session = session
        self._guard = guard
        self._policy = policy

    async def run_once(self) -> int:
        """Send what is due, `batch` at a time, until nothing is; returns how many."""
        sent = 0
        while True:
            claimed = await self._claim_batch()
            if not claimed:
                return sent
            await asyncio.gather(*(self._deliver(delivery) for delivery in claimed))
            sent += len(claimed)

    async def _claim_batch(self) -> list[Delivery]:
        claimed: list[Delivery] = []
        now = datetime.now(UTC)
        while len(claimed) < self._policy.batch:
            token = secrets.token_hex(8)
            delivery = await self._repository.claim(now, now + self._policy.lease, token)
            if delivery is None:
                break
            claimed.append(delivery)
        return claimed

    async def _deliver(self, delivery: Delivery) -> None:
        endpoint = await self._repository.get_endpoint(delivery.endpoint_id)
        if endpoint is None:  # deleted meanwhile
            await self._repository.drop(delivery.id)
            return
        number = len(delivery.attempts) + 1
        outcome = await self._post(endpoint.url, endpoint.secret, delivery)
        now = datetime.now(UTC)
        attempt = Attempt(
            number=number,
            status=DeliveryStatus.SUCCEEDED if outcome.succeeded else DeliveryStatus.FAILED,
            at=now,
            response_code=outcome.response_code,
            error=outcome.error,
        )
        status, next_at = self._next_state(outcome, number, now)
        if not await self._repository.finish_attempt(delivery, attempt, status, next_at):
            log.warning("webhook delivery lease lost", delivery=delivery.id)
            return
        log.info(
            "webhook attempt",
            delivery=delivery.id,
            attempt=number,
            code=outcome.response_code,
            error=outcome.error,
            status=status.value,
        )
        if outcome.gone:
            log.info("webhook endpoint gone; disabled", endpoint=endpoint.id)
            await self._repository.disable_endpoint(endpoint.id)

    def _next_state(
        self, outcome: _Outcome, number: int, now: datetime
    ) -> tuple[DeliveryStatus, datetime | None]:
        if outcome.succeeded:
            return DeliveryStatus.SUCCEEDED, None
        schedule = self._policy.retry_schedule
        if outcome.gone or number > len(schedule):
            return DeliveryStatus.FAILED, None
        delay = max(schedule[number - 1], outcome.retry_after or 0.0)
        return DeliveryStatus.PENDING, now + timedelta(seconds=delay)

    async def _post(self, url: str, secret: str, delivery: Delivery) -> _Outcome:
        timestamp = int(datetime.now(UTC).timestamp())
        headers = {
            **signing.headers(secret, delivery.message_id, timestamp, delivery.body),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        try:
            # Checked again now (DNS may have changed since creation); the session's
            # resolver checks the addresses it connects to as well.
            await self._guard.check_url(url)
            async with self._session.post(
                url, data=delivery.body, headers=headers, allow_redirects=False
            ) as response:
                return _Outcome(
                    response_code=response.status,
                    retry_after=_retry_after(response.headers.get("Retry-After")),
                )
        except Exception as exc:  # any failure to deliver is the attempt's outcome
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return _Outcome(error=error[:MAX_ERROR_CHARS])


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (the HTTP-date form is not honoured)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(min(int(value.strip()), MAX_RETRY_AFTER_SECONDS))
