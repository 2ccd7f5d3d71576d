"""Media jobs: fetch the upload, run the media pipeline off the event loop, store the
outputs. Knows nothing of AMQP; the consumers publish what it returns.

Outputs have fixed keys per video, so redoing a job (a redelivered message after a
crash) overwrites the same objects: harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import structlog

from services.transcoder.media.cut import CutResult
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.pipeline import PreparedMedia, cut_clip, prepare_media
from services.transcoder.media.probe import MediaLimits, MediaRejected
from services.transcoder.work_dirs import job_directory
from shared.events import (
    TrimCompleted,
    TrimFailed,
    TrimRequested,
    VideoDeleted,
    VideoFailed,
    VideoProcessed,
    VideoUploaded,
)
from shared.object_keys import clip_key, playback_key, thumbnail_key
from shared.storage import ObjectMissing, Storage

log = structlog.get_logger(__name__)

T = TypeVar("T")

PLAYBACK_CONTENT_TYPE = "video/mp4"
THUMBNAIL_CONTENT_TYPE = "image/jpeg"


@dataclass(frozen=True)
class MediaSettings:
    limits: MediaLimits
    profile: PlaybackProfile
    thumbnail_max_width: int
    work_dir: Path | None


class MediaJobs:
    def __init__(self, storage: Storage, executor: Executor, settings: MediaSettings) -> None:
        self._storage = storage
        self._executor = executor
        self._settings = settings

    async def process_upload(self, event: VideoUploaded) -> VideoProcessed | VideoFailed:
        """Probe, thumbnail and make the playback file of one upload.

        Media the pipeline refuses ends in `VideoFailed` with a readable reason;
        storage or broker trouble raises, so the message is retried.
        """
        with job_directory(self._settings.work_dir) as tmp:
            workdir = Path(tmp)
            source = workdir / "source"
            try:
                await self._storage.download(event.object_key, source)
            except ObjectMissing:
                return VideoFailed(
                    video_id=event.video_id, failure_reason="uploaded file is missing"
                )
            try:
                prepared: PreparedMedia = await self._in_executor(
                    partial(
                        prepare_media,
                        source,
                        workdir,
                        self._settings.limits,
                        self._settings.profile,
                        self._settings.thumbnail_max_width,
                    )
                )
            except MediaRejected as exc:
                log.info("upload rejected", video_id=event.video_id, reason=str(exc))
                return VideoFailed(video_id=event.video_id, failure_reason=str(exc))
            await self._storage.upload(
                prepared.playback, playback_key(event.video_id), PLAYBACK_CONTENT_TYPE
            )
            await self._storage.upload(
                prepared.thumbnail, thumbnail_key(event.video_id), THUMBNAIL_CONTENT_TYPE
            )
            log.info(
                "upload processed",
                video_id=event.video_id,
                remuxed=prepared.remuxed,
                duration=prepared.info.duration_seconds,
            )
            return VideoProcessed(
                video_id=event.video_id,
                duration_seconds=prepared.info.duration_seconds,
                size_in_bytes=prepared.playback.stat().st_size,
                video_type=PLAYBACK_CONTENT_TYPE,
                playback_key=playback_key(event.video_id),
                thumbnail_key=thumbnail_key(event.video_id),
            )

    async def discard_upload(self, event: VideoUploaded) -> None:
        """The upload is handled (its result published): drop the incoming object."""
        await self._storage.remove([event.object_key])

    async def delete_video(self, event: VideoDeleted) -> None:
        """Remove what the event names: catalog knows every object a video has."""
        await self._storage.remove(event.object_keys)

    async def trim(self, event: TrimRequested) -> TrimCompleted | TrimFailed:
        """Cut the requested span of the source into a clip.

        The source stays in storage (a failed request may be restarted); the clip has a
        fixed key per request, so redoing the job overwrites it.
        """
        with job_directory(self._settings.work_dir) as tmp:
            workdir = Path(tmp)
            source, clip = workdir / "source", workdir / "clip.mp4"
            failed = partial(
                TrimFailed,
                trim_id=event.trim_id,
                video_id=event.video_id,
                attempt=event.attempt,
            )
            try:
                await self._storage.download(event.source_key, source)
            except ObjectMissing:
                return failed(failure_reason="source file is missing")
            try:
                result: CutResult = await self._in_executor(
                    partial(
                        cut_clip,
                        source,
                        clip,
                        event.start_seconds,
                        event.duration_seconds,
                        self._settings.limits,
                        self._settings.profile,
                    )
                )
            except MediaRejected as exc:
                log.info("trim rejected", trim_id=event.trim_id, reason=str(exc))
                return failed(failure_reason=str(exc))
            await self._storage.upload(clip, clip_key(event.trim_id), PLAYBACK_CONTENT_TYPE)
            log.info("trim done", trim_id=event.trim_id, frames=result.frames)
            return TrimCompleted(
                trim_id=event.trim_id,
                video_id=event.video_id,
                clip_key=clip_key(event.trim_id),
                duration_seconds=result.duration_seconds,
                attempt=event.attempt,
            )

    async def _in_executor(self, job: Callable[[], T]) -> T:
        # Media work runs in the executor so the event loop keeps heartbeats flowing.
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)
