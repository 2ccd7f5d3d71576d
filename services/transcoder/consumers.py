"""Event edges of the transcoder: thin handlers over `MediaJobs`.

Every job arrives on one queue, `jobs`, which the worker takes one message at a time
(prefetch 1): a worker never holds a job it is not running, so a job is only charged a
delivery when its own run dies. The queue is a quorum queue with a delivery limit
(`shared.messaging.JobQueue`): a job whose worker died on every delivery the limit
allows, whose retries are spent, or whose message cannot be read is given up, and its
failure is published here (with a `FailureCode`) before the message goes to the DLQ,
so catalog marks it failed. It replaces the queues of earlier versions (`videos` and
`trims`, classic; `video-jobs` and `trim-jobs`), which are drained into it at start.
"""

from __future__ import annotations

from functools import partial

from services.transcoder.job_metrics import JobMetrics
from services.transcoder.job_progress import JobProgress
from services.transcoder.service import MediaJobs
from shared.events import (
    Envelope,
    TrimFailed,
    TrimRequested,
    VideoDeleted,
    VideoFailed,
    VideoProcessed,
    VideoUploaded,
)
from shared.messaging import Broker, GivenUp, GiveUp, JobQueue, Subscription

LEGACY_QUEUES = ("videos", "trims", "video-jobs", "trim-jobs")


def job_subscription(
    jobs: MediaJobs, broker: Broker, metrics: JobMetrics, *, delivery_limit: int
) -> Subscription:
    subscription = Subscription(
        "jobs",
        prefetch=1,
        job=JobQueue(delivery_limit, _give_up(jobs, broker, metrics), legacy_names=LEGACY_QUEUES),
    )

    @subscription.on(VideoUploaded)
    async def video_uploaded(event: VideoUploaded, envelope: Envelope) -> None:
        publish = partial(broker.publish, correlation_id=envelope.correlation_id)
        progress = JobProgress(publish, "video", event.video_id, attempt=event.attempt)
        # The rungs made after the video is listed report on their own, from zero.
        ladder = JobProgress(publish, "video", event.video_id, attempt=event.attempt)
        with metrics.track("video") as outcome:
            await progress.started()
            playable = False
            async for result in jobs.process_upload(event, progress.report, ladder.report):
                await progress.settled()
                await ladder.settled()
                await publish(result)
                if isinstance(result, VideoFailed):
                    outcome.failed(result.failure_code)
                elif isinstance(result, VideoProcessed):
                    playable = True
                    await ladder.started()
            if playable:
                await jobs.discard_upload(event)
                outcome.done()

    @subscription.on(TrimRequested)
    async def trim_requested(event: TrimRequested, envelope: Envelope) -> None:
        publish = partial(broker.publish, correlation_id=envelope.correlation_id)
        progress = JobProgress(publish, "trim", event.trim_id, attempt=event.attempt)
        with metrics.track("trim") as outcome:
            await progress.started()
            result = await jobs.trim(event, progress.report)
            await progress.settled()
            await publish(result)
            if isinstance(result, TrimFailed):
                outcome.failed(result.failure_code)
            else:
                outcome.done()

    @subscription.on(VideoDeleted)
    async def video_deleted(event: VideoDeleted, _: Envelope) -> None:
        await jobs.delete_video(event)

    return subscription


def _give_up(jobs: MediaJobs, broker: Broker, metrics: JobMetrics) -> GiveUp:
    async def give_up(envelope: Envelope | None, given_up: GivenUp) -> None:
        failure = jobs.abandoned(envelope, worker_died=given_up.worker_died, error=given_up.error)
        if failure is not None:
            correlation_id = envelope.correlation_id if envelope is not None else None
            await broker.publish(failure, correlation_id=correlation_id)
            metrics.failed(
                "video" if isinstance(failure, VideoFailed) else "trim", failure.failure_code
            )

    return give_up
