"""Event edges of live events: the transcoder's results and progress, on the log's own
queue (`event-log`). Results are read against catalog's state by webhooks' own
`EventSources`, so the stream shows what a webhook would; the message is acked only
after the log write, which is idempotent per source event."""

from __future__ import annotations

from services.catalog.events.schemas import JOB_PROGRESS, JobProgress
from services.catalog.events.service import LiveEvents
from services.catalog.hosting.repository import VideoRepository
from services.catalog.trimming.repository import TrimRepository
from services.catalog.webhooks.service import Occurrence
from services.catalog.webhooks.sources import EventSources
from shared.events import (
    Envelope,
    JobProgressed,
    TrimCompleted,
    TrimFailed,
    VideoFailed,
    VideoProcessed,
)
from shared.messaging import Subscription


def event_log_subscription(
    events: LiveEvents, sources: EventSources, videos: VideoRepository, trims: TrimRepository
) -> Subscription:
    subscription = Subscription("event-log")

    async def record(occurrence: Occurrence | None) -> None:
        if occurrence is not None:
            await events.record(occurrence)

    @subscription.on(VideoProcessed)
    async def video_processed(event: VideoProcessed, envelope: Envelope) -> None:
        await record(
            await sources.video_result(
                event.video_id, event.attempt, ready=True, at=envelope.occurred_at
            )
        )

    @subscription.on(VideoFailed)
    async def video_failed(event: VideoFailed, envelope: Envelope) -> None:
        await record(
            await sources.video_result(
                event.video_id, event.attempt, ready=False, at=envelope.occurred_at
            )
        )

    @subscription.on(TrimCompleted)
    async def trim_completed(event: TrimCompleted, envelope: Envelope) -> None:
        await record(
            await sources.trim_result(
                event.trim_id, event.attempt, done=True, at=envelope.occurred_at
            )
        )

    @subscription.on(TrimFailed)
    async def trim_failed(event: TrimFailed, envelope: Envelope) -> None:
        await record(
            await sources.trim_result(
                event.trim_id, event.attempt, done=False, at=envelope.occurred_at
            )
        )

    @subscription.on(JobProgressed)
    async def job_progressed(event: JobProgressed, envelope: Envelope) -> None:
        job = await (videos.get(event.id) if event.job == "video" else trims.get(event.id))
        if job is None:
            return  # deleted meanwhile: nobody to tell
        progress = JobProgress(
            job=event.job, id=event.id, fraction=event.fraction, eta_seconds=event.eta_seconds
        )
        await record(
            Occurrence(
                owner=job.user_id,
                event_type=JOB_PROGRESS,
                source_key=f"{JOB_PROGRESS}:{envelope.id}",
                timestamp=envelope.occurred_at,
                data=progress.model_dump(mode="json", exclude_none=True),
            )
        )

    return subscription
