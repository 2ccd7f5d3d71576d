"""A restarted trim reuses what the first attempt stored: the source (never uploaded
again) and its probe, kept beside it as `sources/<video_id>.probe.json`. Real S3; the
test plays catalog's part (the source in place, the events handed to `MediaJobs`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from minio import Minio

from services.transcoder.app import media_settings
from services.transcoder.service import MediaJobs
from services.transcoder.settings import TranscoderSettings
from shared.events import TrimCompleted, TrimFailed, TrimRequested
from shared.object_keys import source_key, source_probe_key
from shared.storage import open_storage
from tests.transcoder.media_factory import make_clip


async def test_a_restart_reuses_the_stored_probe_of_the_source(
    make_settings: Callable[..., Any], s3: Minio, tmp_path: Path
) -> None:
    settings = make_settings(TranscoderSettings, work_dir=tmp_path)
    video_id = uuid.uuid4().hex[:24]
    make_clip(tmp_path / "source.mp4", seconds=3)
    request = TrimRequested(
        trim_id=uuid.uuid4().hex[:24],
        video_id=video_id,
        user_id="u",
        source_key=source_key(video_id),
        start_seconds=1.5,
        duration_seconds=1,
    )
    async with open_storage(settings) as storage:
        await storage.upload(tmp_path / "source.mp4", source_key(video_id), "video/mp4")
        with ThreadPoolExecutor(max_workers=1) as executor:
            jobs = MediaJobs(storage, executor, media_settings(settings))

            first = await jobs.trim(request)
            assert isinstance(first, TrimCompleted)
            stored = s3.get_object(settings.s3_bucket, source_probe_key(video_id))
            probe = json.loads(stored.read())
            assert probe["duration_seconds"] >= 2.9

            # Arrange: the stored probe says the video is 1 s long. A restart that
            # probed again would cut 1.5 s in; one that reuses the probe refuses.
            probe["duration_seconds"] = 1.0
            (tmp_path / "probe.json").write_text(json.dumps(probe))
            await storage.upload(
                tmp_path / "probe.json", source_probe_key(video_id), "application/json"
            )
            again = await jobs.trim(request.model_copy(update={"attempt": 2}))

    assert isinstance(again, TrimFailed)
    assert again.failure_code == "start_beyond_end"
    assert again.attempt == 2
