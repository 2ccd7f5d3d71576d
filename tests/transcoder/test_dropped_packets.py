"""Undecodable packets left out of a playback file or a clip are not a silent loss: the
worker's results carry how many (`dropped_packets`). Real S3; the test plays catalog's
part (the upload in place, the events handed to `MediaJobs`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from services.transcoder.app import media_settings
from services.transcoder.service import MediaJobs
from services.transcoder.settings import TranscoderSettings
from shared.events import TrimCompleted, TrimRequested, VideoProcessed, VideoUploaded
from shared.object_keys import source_key, upload_key
from shared.storage import open_storage
from tests.transcoder import media_factory as factory


async def test_results_say_how_many_packets_were_left_out(
    make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    settings = make_settings(TranscoderSettings, work_dir=tmp_path)
    video_id = uuid.uuid4().hex[:24]
    whole = factory.make_clip(tmp_path / "whole.mp4", seconds=3)
    # Packets 12 and 18 are shown in the first second, 40 after it.
    damaged = factory.corrupt_packets(whole, tmp_path / "damaged.mp4", [12, 18, 40])
    upload = VideoUploaded(
        video_id=video_id,
        user_id="u",
        object_key=upload_key(video_id),
        file_name="damaged.mp4",
        content_type="video/mp4",
    )
    trim = TrimRequested(
        trim_id=uuid.uuid4().hex[:24],
        video_id=video_id,
        user_id="u",
        source_key=source_key(video_id),
        start_seconds=0,
        duration_seconds=1,
    )
    async with open_storage(settings) as storage:
        await storage.upload(damaged, upload.object_key, "video/mp4")
        await storage.upload(damaged, trim.source_key, "video/mp4")
        with ThreadPoolExecutor(max_workers=1) as executor:
            jobs = MediaJobs(storage, executor, media_settings(settings))

            results = [result async for result in jobs.process_upload(upload)]
            processed = results[0]
            trimmed = await jobs.trim(trim)

    assert isinstance(processed, VideoProcessed)
    assert processed.dropped_packets == 3
    assert isinstance(trimmed, TrimCompleted)
    assert trimmed.dropped_packets == 2
    assert TrimCompleted.model_validate(trimmed.model_dump(mode="json")).dropped_packets == 2
