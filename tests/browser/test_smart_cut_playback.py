"""A smart-cut clip plays in a real browser across its seams: the re-encoded head (its
own SPS/PPS, listed in the `avcC` with the source's), the copied middle and the
re-encoded tail, with no corrupted frame, at the clip's size and length.

The clip is cut here (no services involved) and served from a tiny local site.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page

from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.probe import MediaLimits, probe
from services.transcoder.media.smart_cut import smart_cut
from tests.browser.test_playback import (
    BROWSER_TIMEOUT_MS,
    METADATA_LOADED_JS,
    PLAYED_JS,
    PLAYER_ID,
    STATE_JS,
)
from tests.conftest import serve
from tests.transcoder import media_factory as factory

FPS = 25
SIZE = (320, 240)
#: A keyframe every second, B-frames; the cut starts mid-group and ends mid-group, so
#: the clip has a head, two copied groups and a tail.
START, DURATION = 0.52, 3.0


def _site(clip: Path) -> web.Application:
    document = (
        "<!doctype html><meta charset=utf-8><title>Smart cut</title>"
        f'<video id="{PLAYER_ID}" src="/clip.mp4" muted playsinline preload="auto"></video>'
    )

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=document, content_type="text/html")

    async def video(request: web.Request) -> web.FileResponse:
        return web.FileResponse(clip, headers={"Content-Type": "video/mp4"})

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/clip.mp4", video)
    return app


def _make_clip(folder: Path) -> Path:
    source = factory.make_indexed_clip(
        folder / "source.mp4", seconds=5, gop=FPS, bframes=2, size=SIZE
    )
    clip = folder / "clip.mp4"
    limits = MediaLimits(max_duration_seconds=3600, max_width=1920, max_height=1080)
    result = smart_cut(
        source, clip, START, DURATION, probe(source, limits), PlaybackProfile(preset="ultrafast")
    )
    assert result.method == "smart", result.reencode_reason
    assert 0 < result.copied_packets < result.frames  # head and tail re-encoded
    return clip


async def _state(page: Page) -> dict[str, Any]:
    return dict(await page.evaluate(STATE_JS))


async def test_a_smart_cut_clip_plays_across_its_seams(page: Page, tmp_path: Path) -> None:
    clip = await asyncio.to_thread(_make_clip, tmp_path)

    async with serve(_site(clip)) as site:
        await page.goto(f"{site}/")
        await page.wait_for_function(METADATA_LOADED_JS, timeout=BROWSER_TIMEOUT_MS)
        loaded = await _state(page)
        assert loaded["error"] is None, loaded
        assert (loaded["videoWidth"], loaded["videoHeight"]) == SIZE, loaded
        assert loaded["duration"] == pytest.approx(DURATION, abs=0.1), loaded

        await page.evaluate(f'() => document.getElementById("{PLAYER_ID}").play()')
        # Past the head→middle seam (0.48 s in) and the middle→tail one (2.48 s in).
        await page.wait_for_function(PLAYED_JS, arg=2.8, timeout=BROWSER_TIMEOUT_MS)
        played = await _state(page)

    assert played["error"] is None, played
    assert played["currentTime"] > 2.8 or played["ended"], played
    assert played["totalVideoFrames"] >= 2.8 * FPS * 0.8, played
    assert played["corruptedVideoFrames"] == 0, played
    assert played["audioDecodedBytes"] > 0, played
