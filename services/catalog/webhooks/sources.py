"""What a result event means for webhooks, read from catalog's own state.

The transcoder's results reach catalog on two queues: hosting's and trimming's (which
change the state) and webhooks' own. Webhooks read the state those handlers wrote,
so a payload shows the video or request exactly as the API does. When the state has
not caught up yet (the other queue is behind), `NotYetApplied` is raised after a short
wait; the broker then retries the message later. A result the state will never show
(a late result of an earlier attempt, a video deleted meanwhile) yields nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from services.catalog.hosting.repository import Video, VideoRepository, VideoStatus
from services.catalog.hosting.schemas import UnprocessedVideo, VideoPublic
from services.catalog.trimming.repository import TrimRepository, TrimStatus
from services.catalog.trimming.schemas import RequestResource
from services.catalog.webhooks.service import Occurrence

#: How long a handler waits for the state to catch up before handing the message back.
CATCH_UP_SECONDS = 5.0
_POLL_SECONDS = 0.1

T = TypeVar("T")
ThumbnailUrl = Callable[[str | None], str | None]


class NotYetApplied(Exception):
    """The event's state change is not stored yet; retry the message later."""


async def _caught_up(
    read: Callable[[], Awaitable[T | None]], waiting: Callable[[T], bool]
) -> T | None:
    """The state once it no longer waits for the event (None: gone)."""
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while True:
        state = await read()
        if state is None or not waiting(state):
            return state
        if time.monotonic() > deadline:
            raise NotYetApplied("the state change is not stored yet")
        await asyncio.sleep(_POLL_SECONDS)


class EventSources:
    def __init__(
        self, videos: VideoRepository, trims: TrimRepository, thumbnail_url: ThumbnailUrl
    ) -> None:
        self._videos = videos
        self._trims = trims
        self._thumbnail_url = thumbnail_url

    async def video_result(
        self, hash_id: str, attempt: int, *, ready: bool, at: datetime
    ) -> Occurrence | None:
        """`video.ready` (listed) or `video.failed`, as `/video/my/` shows the video."""
        waiting = (VideoStatus.PENDING, VideoStatus.PROCESSING)
        video = await _caught_up(
            lambda: self._videos.get(hash_id),
            lambda v: v.status in waiting and v.attempt == attempt,
        )
        wanted = VideoStatus.PROCESSED if ready else VideoStatus.FAILED
        if video is None or video.status is not wanted or video.attempt != attempt:
            return None
        event_type = "video.ready" if ready else "video.failed"
        return Occurrence(
            owner=video.user_id,
            event_type=event_type,
            source_key=f"{event_type}:{hash_id}:{attempt}",
            timestamp=at,
            data=self._video_record(video),
        )

    def _video_record(self, video: Video) -> dict[str, object]:
        if video.status is VideoStatus.PROCESSED:
            public = VideoPublic.of(video, self._thumbnail_url(video.thumbnail_key), for_owner=True)
            return public.model_dump(mode="json", exclude_none=True)
        return UnprocessedVideo.of(video).model_dump(mode="json", exclude_none=True)

    async def trim_result(
        self, trim_id: str, attempt: int, *, done: bool, at: datetime
    ) -> Occurrence | None:
        """`trim.done` or `trim.failed`, the request as the API's resource."""
        waiting = (TrimStatus.SCHEDULED, TrimStatus.PROCESSING)
        job = await _caught_up(
            lambda: self._trims.get(trim_id),
            lambda j: j.status in waiting and j.attempt == attempt,
        )
        wanted = TrimStatus.DONE if done else TrimStatus.FAILED
        if job is None or job.status is not wanted or job.attempt != attempt:
            return None
        event_type = "trim.done" if done else "trim.failed"
        return Occurrence(
            owner=job.user_id,
            event_type=event_type,
            source_key=f"{event_type}:{trim_id}:{attempt}",
            timestamp=at,
            data=RequestResource.of(job).model_dump(mode="json", exclude_none=True),
        )
