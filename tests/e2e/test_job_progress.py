"""Progress through the gateway, as a client polling would see it: a long hosting
transcode and a long trim each report a fraction strictly between 0 and 1 and an ETA
while they run, never going back, and end at 1 (trims) or listed (hosting)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import Account, make_user, my_videos, upload_video
from tests.e2e.test_trimming_api import post_video, requests_of, trim_form
from tests.transcoder.media_factory import make_clip

#: Long enough at this size that the job runs for several seconds (reports come once a
#: second at most).
LONG_SECONDS = 20
SIZE = (640, 360)


async def _watch(poll: Any, *, within: float = 120) -> list[float]:
    """Poll until the job ends; the progress values seen on the way."""
    seen: list[float] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        progress, finished = await poll()
        if progress is not None:
            seen.append(progress)
        if finished:
            return seen
    raise AssertionError(f"the job did not end within {within} s (progress seen: {seen})")


async def test_a_long_trim_reports_rising_progress_with_an_eta(
    http: aiohttp.ClientSession, gateway_url: str, tmp_path: Path
) -> None:
    account: Account = await make_user(http, gateway_url)
    source = tmp_path / "long.mp4"
    make_clip(source, seconds=LONG_SECONDS, size=SIZE)
    status, _ = await post_video(
        http, gateway_url, account, trim_form(source.read_bytes(), start="1", duration="18")
    )
    assert status == 201
    etas: list[float] = []

    async def poll() -> tuple[float | None, bool]:
        [request] = await requests_of(http, gateway_url, account)
        attributes = request["attributes"]
        if "eta_seconds" in attributes and attributes["status"] == "processing":
            etas.append(attributes["eta_seconds"])
        return attributes.get("progress"), attributes["status"] in {"done", "failed"}

    seen = await _watch(poll)

    assert seen == sorted(seen), f"progress went back: {seen}"
    assert any(0 < value < 1 for value in seen), f"no progress seen mid-job: {seen}"
    assert seen[-1] == 1.0
    assert etas, "no ETA seen while processing"
    assert all(eta >= 0 for eta in etas)


async def test_a_long_hosting_transcode_reports_rising_progress(
    http: aiohttp.ClientSession, gateway_url: str, tmp_path: Path
) -> None:
    account = await make_user(http, gateway_url)
    source = tmp_path / "long.webm"
    make_clip(
        source,
        seconds=LONG_SECONDS,
        size=SIZE,
        video_codec="libvpx-vp9",
        container="webm",
        audio_codec="libopus",
        video_options={"deadline": "realtime", "cpu-used": "8"},
    )
    hash_id = await upload_video(
        http, gateway_url, account, source.read_bytes(), content_type="video/webm"
    )

    async def poll() -> tuple[float | None, bool]:
        mine = await my_videos(http, gateway_url, account)
        if any(v["hash_id"] == hash_id for v in mine["videos"]):
            return None, True
        [video] = [v for v in mine["unprocessed_videos"] if v["hash_id"] == hash_id]
        assert video["status"] in {"pending", "processing"}, video
        return video.get("progress"), False

    seen = await _watch(poll)

    assert seen == sorted(seen), f"progress went back: {seen}"
    assert any(0 < value < 1 for value in seen), f"no progress seen mid-job: {seen}"
