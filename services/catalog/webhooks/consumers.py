"""Event edges of webhooks: the transcoder's results, on webhooks' own queue.

Each result is read against catalog's state (`sources.py`) and becomes one stored
delivery per endpoint that wants it; the message is acked only after they are stored,
so a crash in between redelivers it, and recording is idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.catalog.webhooks.service import Occurrence, WebhookService
from services.catalog.webhooks.sources import EventSources
from shared.events import Envelope, TrimCompleted, TrimFailed, VideoFailed, VideoProcessed
from shared.messaging import Subscription

Record = Callable[[Occurrence], Awaitable[object]]


def webhook_events_subscription(webhooks: WebhookService, sources: EventSources) -> Subscription:
    subscription = Subscription("webhook-events")
    on_results(subscription, sources, webhooks.record)
    return subscription


def on_results(subscription: Subscription, sources: EventSources, record: Record) -> None:
    """Handle the transcoder's four results on `subscription`: each read against
    catalog's state (`sources`) and, when it means something to its owner, handed to
    `record` (webhooks' deliveries, the live event log)."""

    async def recorded(occurrence: Occurrence | None) -> None:
        if occurrence is not None:
            await record(occurrence)

    @subscription.on(VideoProcessed)
    async def video_processed(event: VideoProcessed, envelope: Envelope) -> None:
        await recorded(
            await sources.video_result(
                event.video_id, event.attempt, ready=True, at=envelope.occurred_at
            )
        )

    @subscription.on(VideoFailed)
    async def video_failed(event: VideoFailed, envelope: Envelope) -> None:
        await recorded(
            await sources.video_result(
                event.video_id, event.attempt, ready=False, at=envelope.occurred_at
            )
        )

    @subscription.on(TrimCompleted)
    async def trim_completed(event: TrimCompleted, envelope: Envelope) -> None:
        await recorded(
            await sources.trim_result(
                event.trim_id, event.attempt, done=True, at=envelope.occurred_at
            )
        )

    @subscription.on(TrimFailed)
    async def trim_failed(event: TrimFailed, envelope: Envelope) -> None:
        await recorded(
            await sources.trim_result(
                event.trim_id, event.attempt, done=False, at=envelope.occurred_at
            )
        )
