"""Event edges of hosting: the transcoder's results and the store's upload notifications."""

from __future__ import annotations

from services.catalog.hosting.service import HostingService
from services.catalog.hosting.storage_notifications import storage_events_source
from shared.events import (
    Envelope,
    JobProgressed,
    StorageObjectCreated,
    VideoFailed,
    VideoProcessed,
    VideoRenditionsAdded,
)
from shared.messaging import Subscription


def video_results_subscription(hosting: HostingService) -> Subscription:
    subscription = Subscription("video-results")

    @subscription.on(VideoProcessed)
    async def video_processed(event: VideoProcessed, _: Envelope) -> None:
        await hosting.processed(event)

    @subscription.on(VideoRenditionsAdded)
    async def renditions_added(event: VideoRenditionsAdded, _: Envelope) -> None:
        await hosting.renditions_added(event)

    @subscription.on(VideoFailed)
    async def video_failed(event: VideoFailed, _: Envelope) -> None:
        await hosting.failed(event)

    @subscription.on(JobProgressed)
    async def job_progressed(event: JobProgressed, _: Envelope) -> None:
        if event.job == "video":
            await hosting.progressed(event)

    return subscription


def storage_events_subscription(
    hosting: HostingService, *, exchange: str, bucket: str
) -> Subscription:
    """Object-created notifications from the store (MinIO's AMQP target)."""
    subscription = Subscription("storage-events", source=storage_events_source(exchange, bucket))

    @subscription.on(StorageObjectCreated)
    async def object_created(event: StorageObjectCreated, envelope: Envelope) -> None:
        await hosting.upload_arrived(
            event.key, event.size, envelope.occurred_at, correlation_id=str(envelope.id)
        )

    return subscription
