"""Media jobs: fetch the upload, run the media pipeline off the event loop, store the
outputs. Knows nothing of AMQP; the consumers publish what it returns.

Outputs have fixed keys per video, so redoing a job (a redelivered message after a
crash) overwrites the same objects: harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import structlog

from services.transcoder.media import ladder
from services.transcoder.media.cut import CutResult
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.pipeline import (
    PlayableMedia,
    complete_ladder,
    cut_clip,
    prepare_media,
)
from services.transcoder.media.probe import MediaInfo, MediaLimits, MediaRejected, probe
from services.transcoder.media.progress import Progress
from services.transcoder.work_dirs import job_directory
from shared import hls
from shared.events import (
    Envelope,
    FailureCode,
    Rendition,
    TrimCompleted,
    TrimFailed,
    TrimRequested,
    VideoDeleted,
    VideoFailed,
    VideoProcessed,
    VideoRenditionsAdded,
    VideoUploaded,
)
from shared.object_keys import (
    clip_key,
    rendition_file_name,
    rendition_key,
    rendition_playlist_key,
    source_probe_key,
    thumbnail_key,
)
from shared.storage import ObjectMissing, Storage, is_storage_failure

log = structlog.get_logger(__name__)

T = TypeVar("T")

PLAYBACK_CONTENT_TYPE = "video/mp4"
THUMBNAIL_CONTENT_TYPE = "image/jpeg"


@dataclass(frozen=True)
class MediaSettings:
    limits: MediaLimits
    profile: PlaybackProfile
    #: The ladder's rung heights (`ladder.plan_ladder`).
    ladder_heights: Sequence[int]
    thumbnail_max_width: int
    work_dir: Path | None


class MediaJobs:
    def __init__(self, storage: Storage, executor: Executor, settings: MediaSettings) -> None:
        self._storage = storage
        self._executor = executor
        self._settings = settings

    async def process_upload(
        self,
        event: VideoUploaded,
        progress: Progress | None = None,
        ladder_progress: Progress | None = None,
    ) -> AsyncIterator[VideoProcessed | VideoRenditionsAdded | VideoFailed]:
        """Host one upload, yielding each result as soon as it is stored: the video
        playable (`VideoProcessed`, its first rendition and thumbnail), then the rest of
        its ladder (`VideoRenditionsAdded`).

        Media the pipeline refuses ends in `VideoFailed` with a readable reason and its
        code; once the video is playable, a refusal of the rest is reported on the
        ladder (the video stays playable). Storage or broker trouble raises, so the
        message is retried: the objects have fixed keys, a retry overwrites them.
        """
        with job_directory(self._settings.work_dir) as tmp:
            workdir = Path(tmp)
            source = workdir / "source"
            try:
                await self._storage.download(event.object_key, source)
            except ObjectMissing:
                yield VideoFailed(
                    video_id=event.video_id,
                    failure_reason="uploaded file is missing",
                    failure_code=FailureCode.SOURCE_MISSING,
                    attempt=event.attempt,
                )
                return
            settings = self._settings
            try:
                playable: PlayableMedia = await self._in_executor(
                    partial(
                        prepare_media,
                        source,
                        workdir,
                        settings.limits,
                        settings.profile,
                        settings.ladder_heights,
                        settings.thumbnail_max_width,
                        progress,
                    )
                )
            except MediaRejected as exc:
                log.info("upload rejected", video_id=event.video_id, reason=str(exc))
                yield VideoFailed(
                    video_id=event.video_id,
                    failure_reason=str(exc),
                    failure_code=exc.code,
                    attempt=event.attempt,
                )
                return
            first = await self._store_rendition(event.video_id, playable.first, workdir)
            thumbnail = thumbnail_key(event.video_id)
            await self._storage.upload(playable.thumbnail, thumbnail, THUMBNAIL_CONTENT_TYPE)
            log.info(
                "upload playable",
                video_id=event.video_id,
                rung=first.height,
                remuxed=first.remuxed,
                duration=playable.info.duration_seconds,
            )
            yield VideoProcessed(
                video_id=event.video_id,
                duration_seconds=playable.info.duration_seconds,
                size_in_bytes=first.size_in_bytes,
                video_type=PLAYBACK_CONTENT_TYPE,
                playback_key=first.key,
                thumbnail_key=thumbnail,
                attempt=event.attempt,
                dropped_packets=playable.first.dropped_packets,
                renditions=[first],
                ladder_pending=[rung.height for rung in playable.rest],
            )
            if not playable.rest:
                return
            try:
                made = await self._in_executor(
                    partial(
                        complete_ladder,
                        source,
                        workdir,
                        playable,
                        settings.profile,
                        ladder_progress,
                    )
                )
            except MediaRejected as exc:
                log.info("ladder refused", video_id=event.video_id, reason=str(exc))
                yield VideoRenditionsAdded(
                    video_id=event.video_id,
                    renditions=[],
                    failure_reason=str(exc),
                    attempt=event.attempt,
                )
                return
            stored = [await self._store_rendition(event.video_id, r, workdir) for r in made]
            log.info("ladder complete", video_id=event.video_id, rungs=[r.height for r in stored])
            yield VideoRenditionsAdded(
                video_id=event.video_id,
                renditions=stored,
                attempt=event.attempt,
                dropped_packets=max((r.dropped_packets for r in made), default=0),
            )

    async def _store_rendition(
        self, video_id: str, rendition: ladder.Rendition, workdir: Path
    ) -> Rendition:
        """Store a rendition file and its media playlist (naming the file relatively)."""
        height = rendition.height
        playlist = workdir / f"{height}p.m3u8"
        segments = [hls.Segment(f.offset, f.size, f.duration) for f in rendition.fragments]
        playlist.write_text(
            hls.media_playlist(rendition_file_name(height), rendition.init_size, segments)
        )
        key, playlist_key = (
            rendition_key(video_id, height),
            rendition_playlist_key(video_id, height),
        )
        await self._storage.upload(rendition.path, key, PLAYBACK_CONTENT_TYPE)
        await self._storage.upload(playlist, playlist_key, hls.CONTENT_TYPE)
        return Rendition(
            height=height,
            width=rendition.width,
            key=key,
            playlist_key=playlist_key,
            size_in_bytes=rendition.size_in_bytes,
            codecs=rendition.codecs,
            bandwidth=rendition.bandwidth,
            average_bandwidth=rendition.average_bandwidth,
            remuxed=rendition.remuxed,
        )

    async def discard_upload(self, event: VideoUploaded) -> None:
        """The upload is processed (its result published): drop the incoming object. A
        failed upload keeps it, for a retry (catalog removes it after a while)."""
        await self._storage.remove([event.object_key])

    async def delete_video(self, event: VideoDeleted) -> None:
        """Remove what the event names: catalog knows every object a video has."""
        await self._storage.remove(event.object_keys)
        for prefix in event.object_prefixes:
            await self._storage.remove_prefix(prefix)

    async def trim(
        self, event: TrimRequested, progress: Progress | None = None
    ) -> TrimCompleted | TrimFailed:
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
                return failed(
                    failure_reason="source file is missing",
                    failure_code=FailureCode.SOURCE_MISSING,
                )
            try:
                info = await self._source_probe(event.video_id, source, workdir)
                result: CutResult = await self._in_executor(
                    partial(
                        cut_clip,
                        source,
                        clip,
                        event.start_seconds,
                        event.duration_seconds,
                        self._settings.limits,
                        self._settings.profile,
                        progress,
                        info,
                    )
                )
            except MediaRejected as exc:
                log.info("trim rejected", trim_id=event.trim_id, reason=str(exc))
                return failed(failure_reason=str(exc), failure_code=exc.code)
            await self._storage.upload(clip, clip_key(event.trim_id), PLAYBACK_CONTENT_TYPE)
            log.info(
                "trim done",
                trim_id=event.trim_id,
                frames=result.frames,
                dropped_packets=result.dropped_packets,
            )
            return TrimCompleted(
                trim_id=event.trim_id,
                video_id=event.video_id,
                clip_key=clip_key(event.trim_id),
                duration_seconds=result.duration_seconds,
                attempt=event.attempt,
                dropped_packets=result.dropped_packets,
                actual_start_seconds=result.actual_start,
                cut_method=result.method,
                reencode_reason=result.reencode_reason,
            )

    async def _source_probe(self, video_id: str, source: Path, workdir: Path) -> MediaInfo:
        """The trim source's probe: stored beside the source the first time, so that a
        restarted request (a new attempt) reuses it instead of probing again."""
        stored = workdir / "probe.json"
        key = source_probe_key(video_id)
        with contextlib.suppress(ObjectMissing):
            await self._storage.download(key, stored)
            with contextlib.suppress(ValueError, TypeError):
                return MediaInfo(**json.loads(stored.read_text()))
        info = await self._in_executor(partial(probe, source, self._settings.limits))
        stored.write_text(json.dumps(asdict(info)))
        await self._storage.upload(stored, key, "application/json")
        return info

    @staticmethod
    def abandoned(
        envelope: Envelope | None, *, worker_died: bool, error: Exception | None
    ) -> VideoFailed | TrimFailed | None:
        """The failure to report for a job given up (its message goes to the DLQ), so it
        ends `failed` instead of staying in processing; None when the message names no
        job (a deletion, or a body that is not even an envelope)."""
        if envelope is None:
            return None
        data = envelope.data
        video_id = data.get("video_id")
        if not isinstance(video_id, str):
            return None
        if worker_died:
            code, reason = FailureCode.WORKER_CRASHED, "processing stopped unexpectedly, repeatedly"
        elif error is not None and is_storage_failure(error):
            code, reason = FailureCode.STORAGE_ERROR, "storage was unavailable; try again later"
        else:
            code, reason = FailureCode.INTERNAL_ERROR, "an internal error stopped processing"
        attempt = data.get("attempt", 1)
        attempt = attempt if isinstance(attempt, int) and attempt >= 1 else 1
        if envelope.type == VideoUploaded.event_type:
            return VideoFailed(
                video_id=video_id, failure_reason=reason, failure_code=code, attempt=attempt
            )
        trim_id = data.get("trim_id") or data.get("request_id")
        if envelope.type == TrimRequested.event_type and isinstance(trim_id, str):
            return TrimFailed(
                trim_id=trim_id,
                video_id=video_id,
                failure_reason=reason,
                failure_code=code,
                attempt=attempt,
            )
        return None

    async def _in_executor(self, job: Callable[[], T]) -> T:
        # Media work runs in the executor so the event loop keeps heartbeats flowing.
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)
