"""Bad media through the gateway, as users send it: each file uploaded for hosting and
for trimming ends the same way on both paths (listed and done, or failed with the same
code), and packets left out because they did not decode are said to the owner.

The whole corpus is judged at the media level (`tests/transcoder/test_bad_media.py`);
these are its defects, end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Account, upload_video, wait_until_done
from tests.e2e.test_trimming_api import post_video, requests_of, trim_form, wait_for_status
from tests.transcoder import media_factory as factory

Make = Callable[[Path], Path]

#: name → (how the file is made, its content type, its failure code or None).
CASES: dict[str, tuple[Make, str, str | None]] = {
    "mpeg-4 mp3 avi": (
        lambda d: factory.make_clip(
            d / "old.avi", seconds=3, video_codec="mpeg4", audio_codec="libmp3lame"
        ),
        "video/x-msvideo",
        None,
    ),
    "mp4 cut at 50 %": (
        lambda d: factory.truncate(
            factory.make_clip(d / "whole.mp4", seconds=3, faststart=True), d / "cut.mp4", 0.5
        ),
        "video/mp4",
        "corrupt_media",
    ),
    "a few corrupted packets": (
        lambda d: factory.corrupt_packets(
            factory.make_clip(d / "whole.mp4", seconds=3), d / "damaged.mp4", [12, 18, 40]
        ),
        "video/mp4",
        None,
    ),
    "random bytes": (
        lambda d: factory.make_random_bytes(d / "noise.mp4"),
        "video/mp4",
        "not_media",
    ),
    "audio only": (
        lambda d: factory.make_audio_only(d / "song.mp4", seconds=1),
        "video/mp4",
        "no_video_stream",
    ),
}


async def _hosted(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, data: bytes, content_type: str
) -> dict[str, Any]:
    hash_id = await upload_video(
        http, gateway_url, account, data, file_name="upload.bin", content_type=content_type
    )
    state, record = await wait_until_done(http, gateway_url, account, hash_id)
    return {"state": state, **record}


async def _trimmed(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, data: bytes, duration: str
) -> dict[str, Any]:
    status, _ = await post_video(
        http, gateway_url, account, trim_form(data, start="0", duration=duration)
    )
    assert status == 201
    (request,) = await requests_of(http, gateway_url, account)
    ended = await wait_for_status(http, gateway_url, account, request["id"], "done", "failed")
    return dict(ended["attributes"])


@pytest.mark.parametrize("name", list(CASES))
async def test_hosting_and_trimming_judge_a_file_alike(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    tmp_path: Path,
    name: str,
) -> None:
    make, content_type, code = CASES[name]
    data = (await asyncio.to_thread(make, tmp_path)).read_bytes()

    hosted, trimmed = await asyncio.gather(
        _hosted(http, gateway_url, account, data, content_type),
        _trimmed(http, gateway_url, account, data, "1"),
    )

    if code is None:
        assert hosted["state"] == "listed", hosted
        assert trimmed["status"] == "done", trimmed
        damaged = name == "a few corrupted packets"
        assert (hosted["dropped_packets"] > 0) == damaged, hosted
        assert (trimmed["dropped_packets"] > 0) == damaged, trimmed
    else:
        assert (hosted["state"], hosted["failure_code"]) == ("failed", code), hosted
        assert (trimmed["status"], trimmed["failure_code"]) == ("failed", code), trimmed
        assert hosted["failure_reason"] == trimmed["failure_reason"]


async def test_a_span_shorter_than_one_frame_fails_as_such(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, tmp_path: Path
) -> None:
    """0.01 s passes the form (at least a millisecond) but is shorter than a frame of
    this 25 fps video."""
    data = (await asyncio.to_thread(factory.make_clip, tmp_path / "c.mp4", seconds=1)).read_bytes()
    trimmed = await _trimmed(http, gateway_url, account, data, "0.01")
    assert trimmed["status"] == "failed"
    assert trimmed["failure_code"] == "span_too_short"
    assert trimmed["failure_reason"] == "the span is shorter than one frame"
