"""What the transcoder reports for a job it gives up (`MediaJobs.abandoned`) and how it
reports progress (`JobProgress`): plain functions, no broker."""

from __future__ import annotations

import asyncio
import threading

import urllib3

from services.transcoder.job_progress import JobProgress
from services.transcoder.service import MediaJobs
from shared.events import (
    Envelope,
    FailureCode,
    JobProgressed,
    TrimFailed,
    TrimRequested,
    VideoDeleted,
    VideoFailed,
    VideoUploaded,
)


def _uploaded() -> Envelope:
    event = VideoUploaded(
        video_id="v1",
        user_id="u1",
        object_key="incoming/v1",
        file_name="a.mp4",
        content_type="video/mp4",
    )
    return Envelope.wrap(event, correlation_id="req-1")


def _trim(**data: object) -> Envelope:
    event = TrimRequested(
        trim_id="t1",
        video_id="v2",
        user_id="u1",
        source_key="sources/v2",
        start_seconds=1,
        duration_seconds=2,
        attempt=3,
    )
    envelope = Envelope.wrap(event, correlation_id=None)
    return envelope.model_copy(update={"data": {**envelope.data, **data}})


def test_a_worker_that_died_every_time_fails_the_video_as_worker_crashed() -> None:
    failure = MediaJobs.abandoned(_uploaded(), worker_died=True, error=None)
    assert isinstance(failure, VideoFailed)
    assert failure.video_id == "v1"
    assert failure.failure_code == FailureCode.WORKER_CRASHED
    assert failure.failure_reason


def test_storage_errors_fail_the_trim_as_storage_error_for_its_attempt() -> None:
    error = urllib3.exceptions.MaxRetryError(None, "/bucket/key", None)
    failure = MediaJobs.abandoned(_trim(), worker_died=False, error=error)
    assert isinstance(failure, TrimFailed)
    assert (failure.trim_id, failure.video_id, failure.attempt) == ("t1", "v2", 3)
    assert failure.failure_code == FailureCode.STORAGE_ERROR


def test_other_errors_and_unreadable_jobs_are_internal_errors() -> None:
    failure = MediaJobs.abandoned(_uploaded(), worker_died=False, error=KeyError("x"))
    assert isinstance(failure, VideoFailed)
    assert failure.failure_code == FailureCode.INTERNAL_ERROR
    # A version 1 message (`request_id`) whose data did not validate still names its job.
    legacy = _trim(request_id="t0", trim_id=None, start_seconds="soon")
    failure = MediaJobs.abandoned(legacy, worker_died=False, error=None)
    assert isinstance(failure, TrimFailed)
    assert failure.trim_id == "t0"


def test_messages_that_name_no_job_report_nothing() -> None:
    deleted = Envelope.wrap(VideoDeleted(video_id="v1", object_keys=[]), correlation_id=None)
    assert MediaJobs.abandoned(deleted, worker_died=True, error=None) is None
    assert MediaJobs.abandoned(None, worker_died=False, error=None) is None
    nameless = _uploaded().model_copy(update={"data": {"user_id": "u1"}})
    assert MediaJobs.abandoned(nameless, worker_died=False, error=None) is None


async def test_progress_is_reported_at_most_once_an_interval_with_an_eta() -> None:
    published: list[JobProgressed] = []
    now = [100.0]

    async def publish(event: JobProgressed) -> None:
        published.append(event)

    progress = JobProgress(publish, "trim", "t1", attempt=2, interval=1.0, clock=lambda: now[0])
    await progress.started()

    def work() -> None:  # the media work reports from its own thread
        for step, fraction in enumerate((0.1, 0.2, 0.25, 0.5), start=1):
            now[0] = 100.0 + step * 0.6
            progress.report(fraction)

    thread = threading.Thread(target=work)
    thread.start()
    await asyncio.to_thread(thread.join)
    await asyncio.sleep(0)  # let the loop run what the thread handed over
    await progress.settled()

    assert [e.stage for e in published] == ["started", "working", "working"]
    assert [e.fraction for e in published] == [0.0, 0.2, 0.5]
    assert all(e.attempt == 2 and e.id == "t1" for e in published)
    # 1.2 s for the first fifth: 4.8 s to go; 2.4 s for half: 2.4 s to go.
    assert [e.eta_seconds for e in published] == [None, 4.8, 2.4]


async def test_a_failed_progress_publish_does_not_fail_the_job() -> None:
    async def publish(event: JobProgressed) -> None:
        if event.stage == "working":
            raise ConnectionError("broker gone")

    now = [0.0]
    progress = JobProgress(publish, "video", "v1", attempt=1, clock=lambda: now[0])
    await progress.started()
    now[0] = 5.0
    progress.report(0.5)
    await asyncio.sleep(0)
    await progress.settled()  # does not raise
