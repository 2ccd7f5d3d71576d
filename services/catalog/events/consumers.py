"""Event edges of live events: the transcoder's results and progress, on the log's own
queue (`event-log`). Results go through webhooks' own handlers
(`webhooks.consumers.on_results`, read against catalog's state), so the stream shows
what a webhook would; the message is acked only after the log write, which is
idempotent per source event."""

from __future__ import annotations

from services.catalog.events.schemas import JOB_PROGRESS, JobProgress
from services.catalog.events.service import LiveEvents
from services.catalog.hosting.repository import VideoRepository
from services.catalog.trimming.repository import TrimRepository
from services.catalog.webhooks.consumers import on_results
from services.catalog.webhooks.service import Occurrence
from services.catalog.webhooks.sources import EventSources
from shared.events import (
    Envelope,
    JobProgressed,
)
from shared.messaging import Subscription


def event_log_subscription(
    events: LiveEvents, sources: EventSources, videos: VideoRepository, trims: TrimRepository
) -> Subscription:
    subscription = Subscription("event-log")

    on_results(subscription, sources, events.record)

    @subscription.on(JobProgressed)
    async def job_progressed(event: JobProgressed, envelope: Envelope) -> None:
        job = await (videos.get(event.id) if event.job == "video" else trims.get(event.id))
        if job is None:
            return  # deleted meanwhile: nobody to tell
        progress = JobProgress(
            job=event.job, id=event.id, fraction=event.fraction, eta_seconds=event.eta_seconds
        )
        await events.record(
            Occurrence(
                owner=job.user_id,
                event_type=JOB_PROGRESS,
                source_key=f"{JOB_PROGRESS}:{envelope.id}",
                timestamp=envelope.occurred_at,
                data=progress.model_dump(mode="json", exclude_none=True),
            )
        )

    return subscription
