"""Event edges of the catalog: thin handlers over the domain."""

from __future__ import annotations

from services.catalog.hosting_service import HostingService
from services.catalog.repository import UserDirectory
from services.catalog.storage_notifications import storage_events_source
from services.catalog.trimming_service import TrimmingService
from shared.events import (
    Envelope,
    JobProgressed,
    StorageObjectCreated,
    TrimCompleted,
    TrimFailed,
    UserRegistered,
    VideoFailed,
    VideoProcessed,
)
from shared.messaging import Subscription


def user_subscription(users: UserDirectory) -> Subscription:
    subscription = Subscription("users")

    @subscription.on(UserRegistered)
    async def user_registered(event: UserRegistered, _: Envelope) -> None:
        await users.remember(event.user_id)

    return subscription


def video_results_subscription(hosting: HostingService) -> Subscription:
    subscription = Subscription("video-results")

    @subscription.on(VideoProcessed)
    async def video_processed(event: VideoProcessed, _: Envelope) -> None:
        await hosting.processed(event)

    @subscription.on(VideoFailed)
    async def video_failed(event: VideoFailed, _: Envelope) -> None:
        await hosting.failed(event)

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


def trim_results_subscription(trimming: TrimmingService) -> Subscription:
    subscription = Subscription("trim-results")

    @subscription.on(JobProgressed)
    async def job_progressed(event: JobProgressed, _: Envelope) -> None:
        if event.job == "trim" and event.stage == "started":
            await trimming.started(event)

    @subscription.on(TrimCompleted)
    async def trim_completed(event: TrimCompleted, _: Envelope) -> None:
        await trimming.completed(event)

    @subscription.on(TrimFailed)
    async def trim_failed(event: TrimFailed, _: Envelope) -> None:
        await trimming.failed(event)

    return subscription
