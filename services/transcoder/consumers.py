"""Event edges of the transcoder: thin handlers over `MediaJobs`."""

from __future__ import annotations

from services.transcoder.service import MediaJobs
from shared.events import Envelope, JobProgressed, TrimRequested, VideoDeleted, VideoUploaded
from shared.messaging import Broker, Subscription


def video_subscription(jobs: MediaJobs, broker: Broker) -> Subscription:
    subscription = Subscription("videos")

    @subscription.on(VideoUploaded)
    async def video_uploaded(event: VideoUploaded, envelope: Envelope) -> None:
        result = await jobs.process_upload(event)
        await broker.publish(result, correlation_id=envelope.correlation_id)
        await jobs.discard_upload(event)

    @subscription.on(VideoDeleted)
    async def video_deleted(event: VideoDeleted, _: Envelope) -> None:
        await jobs.delete_video(event)

    return subscription


def trim_subscription(jobs: MediaJobs, broker: Broker) -> Subscription:
    subscription = Subscription("trims")

    @subscription.on(TrimRequested)
    async def trim_requested(event: TrimRequested, envelope: Envelope) -> None:
        started = JobProgressed(
            job="trim", id=event.trim_id, stage="started", fraction=0, attempt=event.attempt
        )
        await broker.publish(started, correlation_id=envelope.correlation_id)
        result = await jobs.trim(event)
        await broker.publish(result, correlation_id=envelope.correlation_id)

    return subscription
