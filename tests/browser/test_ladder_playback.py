"""A ladder rendition is also the progressive download: the fragmented MP4 plays in a
plain `<video src=...>` in headless Chromium with the clip's duration, past a second,
with no corrupted frame; for an encoded rung and for the copied source rung alike.

The renditions are written here (no services involved) and served from a tiny local
site, which answers range requests as storage does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page

from services.transcoder.media.ladder import (
    DEFAULT_HEIGHTS,
    Rendition,
    encode_renditions,
    plan_ladder,
    remux_rendition,
)
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.probe import MediaLimits, probe
from tests.browser.test_playback import (
    BROWSER_TIMEOUT_MS,
    METADATA_LOADED_JS,
    PLAYED_JS,
    PLAYER_ID,
    STATE_JS,
)
from tests.conftest import serve
from tests.transcoder import media_factory as factory

SECONDS = 3
FPS = 25
SIZE = (640, 360)
PLAYED_SECONDS = 1.2
LIMITS = MediaLimits(max_duration_seconds=3600, max_width=1920, max_height=1080)


#: Records when each frame shown is due (`mediaTime`, its presentation timestamp as the
#: browser reads it): the first must be at zero, where the sound starts.
FRAME_TIMES_SCRIPT = f"""
    window.frameTimes = [];
    const player = document.getElementById("{PLAYER_ID}");
    const record = (now, frame) => {{
        window.frameTimes.push(frame.mediaTime);
        player.requestVideoFrameCallback(record);
    }};
    player.requestVideoFrameCallback(record);
"""


def _site(rendition: Path) -> web.Application:
    document = (
        "<!doctype html><meta charset=utf-8><title>Ladder rendition</title>"
        f'<video id="{PLAYER_ID}" src="/rendition.mp4" muted playsinline preload="auto"></video>'
        f"<script>{FRAME_TIMES_SCRIPT}</script>"
    )

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=document, content_type="text/html")

    async def video(request: web.Request) -> web.FileResponse:
        return web.FileResponse(rendition, headers={"Content-Type": "video/mp4"})

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/rendition.mp4", video)
    return app


def _make_rendition(folder: Path, copied: bool) -> Rendition:
    # B-frames in the source and the rungs (their edit lists must start them at zero),
    # a keyframe every second in the source (the copied rung's fragments).
    source = factory.make_clip(
        folder / "source.mp4",
        seconds=SECONDS,
        size=SIZE,
        fps=FPS,
        video_options={"x264-params": f"keyint={FPS}:bframes=2"},
    )
    info = probe(source, LIMITS)
    if copied:
        return remux_rendition(source, folder / "copied.mp4", info)
    top = plan_ladder(info, DEFAULT_HEIGHTS, 1080)[0]
    profile = PlaybackProfile(preset="veryfast")
    [encoded] = encode_renditions(source, [(top, folder / "encoded.mp4")], info, profile)
    return encoded


async def _state(page: Page) -> dict[str, Any]:
    return dict(await page.evaluate(STATE_JS))


@pytest.mark.parametrize("copied", [False, True], ids=["encoded rung", "copied rung"])
async def test_a_rendition_plays_progressively_in_chromium(
    page: Page, tmp_path: Path, copied: bool
) -> None:
    rendition = await asyncio.to_thread(_make_rendition, tmp_path, copied)
    assert len(rendition.fragments) >= 2  # a fragmented file, not one blob

    async with serve(_site(rendition.path)) as site:
        await page.goto(f"{site}/")
        await page.wait_for_function(METADATA_LOADED_JS, timeout=BROWSER_TIMEOUT_MS)
        loaded = await _state(page)
        assert loaded["error"] is None, loaded
        assert (loaded["videoWidth"], loaded["videoHeight"]) == SIZE, loaded
        # The audio's last AAC frame may run a few milliseconds past the last picture.
        assert loaded["duration"] == pytest.approx(SECONDS, abs=0.05), loaded

        await page.evaluate(f'() => document.getElementById("{PLAYER_ID}").play()')
        await page.wait_for_function(PLAYED_JS, arg=PLAYED_SECONDS, timeout=BROWSER_TIMEOUT_MS)
        played = await _state(page)
        frame_times = await page.evaluate("() => window.frameTimes")

    # Edit lists start B-frame video at zero (FFmpeg's demuxer, which Chromium uses
    # here, would show every frame two frames late otherwise).
    assert frame_times[0] == pytest.approx(0.0, abs=1e-3), frame_times
    assert played["error"] is None, played
    assert played["currentTime"] > PLAYED_SECONDS, played
    assert played["totalVideoFrames"] >= PLAYED_SECONDS * FPS * 0.8, played
    assert played["corruptedVideoFrames"] == 0, played
    assert played["audioDecodedBytes"] > 0, played
