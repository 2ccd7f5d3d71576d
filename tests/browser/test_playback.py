"""Hosted videos play in a real browser: each file is uploaded through the gateway,
processed by the real transcoder, and its presigned `watchable_url` is played by a
`<video>` element in headless Chromium (Debian's package, which carries the H.264 and
AAC decoders). An H.264/AAC MP4 as uploaded, an MPEG-4 Part 2/MP3 AVI that hosting
transcodes, and an MP4 with corrupted packets that hosting repairs by leaving them out.

`video.error` staying null is not enough on its own: given a video track it cannot
decode (HEVC, say), Chromium plays the audio with no error, `videoWidth` 0 and no
decoded frames. So the picture's size and the decoded frame count are checked too.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Page

from tests.conftest import Account, make_user, serve, upload_video, wait_until_done
from tests.transcoder import media_factory as factory

SECONDS = 3
SIZE = (320, 240)
FPS = 25
#: How far playback must get: past a second, with the clip still running.
PLAYED_SECONDS = 1.2
#: Milliseconds the browser gets to load metadata, and to play that far.
BROWSER_TIMEOUT_MS = 20_000

Make = Callable[[Path], Path]

#: name → (how the file is made, its content type, whether hosting leaves packets out).
CLIPS: dict[str, tuple[Make, str, bool]] = {
    "h264 aac mp4": (
        lambda d: factory.make_clip(d / "clip.mp4", seconds=SECONDS, size=SIZE, fps=FPS),
        "video/mp4",
        False,
    ),
    "mpeg-4 mp3 avi, transcoded": (
        lambda d: factory.make_clip(
            d / "old.avi",
            seconds=SECONDS,
            size=SIZE,
            fps=FPS,
            video_codec="mpeg4",
            audio_codec="libmp3lame",
        ),
        "video/x-msvideo",
        False,
    ),
    "mp4 with corrupted packets, repaired": (
        lambda d: factory.corrupt_packets(
            factory.make_clip(d / "whole.mp4", seconds=SECONDS, size=SIZE, fps=FPS),
            d / "damaged.mp4",
            [12, 18, 40],
        ),
        "video/mp4",
        True,
    ),
}

PLAYER_ID = "player"

#: What the page's `<video>` says about itself, read in the browser.
STATE_JS = f"""() => {{
    const v = document.getElementById("{PLAYER_ID}");
    const quality = v.getVideoPlaybackQuality();
    return {{
        readyState: v.readyState,
        error: v.error && {{ code: v.error.code, message: v.error.message }},
        videoWidth: v.videoWidth,
        videoHeight: v.videoHeight,
        duration: v.duration,
        currentTime: v.currentTime,
        ended: v.ended,
        totalVideoFrames: quality.totalVideoFrames,
        corruptedVideoFrames: quality.corruptedVideoFrames,
        videoDecodedBytes: v.webkitVideoDecodedByteCount,
        audioDecodedBytes: v.webkitAudioDecodedByteCount,
    }};
}}"""

METADATA_LOADED_JS = f"""() => {{
    const v = document.getElementById("{PLAYER_ID}");
    return v.readyState >= HTMLMediaElement.HAVE_METADATA || v.error !== null;
}}"""

PLAYED_JS = f"""(seconds) => {{
    const v = document.getElementById("{PLAYER_ID}");
    return v.currentTime > seconds || v.ended || v.error !== null;
}}"""


@pytest.fixture
async def account(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    return await make_user(http, gateway_url)


async def _watchable_url(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, hash_id: str
) -> str:
    async with http.get(
        f"{gateway_url}/video/watch/",
        params={"user_id": account.id, "hash_id": hash_id},
        headers=account.auth,
    ) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["watchable_url"])


def _player_app(video_url: str) -> web.Application:
    """A one-page site on 127.0.0.1 (the storage's host too) with a muted player."""
    document = (
        "<!doctype html><meta charset=utf-8><title>Kino player</title>"
        f'<video id="{PLAYER_ID}" src="{html.escape(video_url)}" muted playsinline '
        'preload="auto"></video>'
    )

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=document, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    return app


async def _state(page: Page) -> dict[str, Any]:
    return dict(await page.evaluate(STATE_JS))


@pytest.mark.parametrize("name", list(CLIPS))
async def test_a_hosted_video_plays_in_chromium(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    page: Page,
    tmp_path: Path,
    name: str,
) -> None:
    make, content_type, repaired = CLIPS[name]
    source = await asyncio.to_thread(make, tmp_path)
    hash_id = await upload_video(
        http,
        gateway_url,
        account,
        source.read_bytes(),
        file_name=source.name,
        content_type=content_type,
    )
    outcome, video = await wait_until_done(http, gateway_url, account, hash_id)
    assert outcome == "listed", video
    assert video["video_type"] == "video/mp4", video
    assert (video["dropped_packets"] > 0) == repaired, video
    watchable_url = await _watchable_url(http, gateway_url, account, hash_id)

    async with serve(_player_app(watchable_url)) as site:
        await page.goto(f"{site}/")
        await page.wait_for_function(METADATA_LOADED_JS, timeout=BROWSER_TIMEOUT_MS)
        loaded = await _state(page)
        assert loaded["error"] is None, loaded
        assert loaded["readyState"] >= 1, loaded
        assert (loaded["videoWidth"], loaded["videoHeight"]) == SIZE, loaded  # video decodes
        assert loaded["duration"] == pytest.approx(SECONDS, abs=0.15), loaded

        # play() rejects (and so fails the test) when the browser cannot play the file.
        await page.evaluate(f'() => document.getElementById("{PLAYER_ID}").play()')
        await page.wait_for_function(PLAYED_JS, arg=PLAYED_SECONDS, timeout=BROWSER_TIMEOUT_MS)
        played = await _state(page)

    assert played["error"] is None, played
    assert played["currentTime"] > PLAYED_SECONDS, played
    assert played["totalVideoFrames"] >= PLAYED_SECONDS * FPS * 0.8, played
    assert played["corruptedVideoFrames"] == 0, played
    assert played["videoDecodedBytes"] > 0, played
    assert played["audioDecodedBytes"] > 0, played
