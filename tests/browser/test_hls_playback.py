"""The `hls_url` of a hosted video plays adaptively in headless Chromium through hls.js,
which `make setup` installs from the npm registry and the gateway serves at
`/static/vendor/hls.min.js` (no CDN): the player sees every rung of the ladder and
plays past a second with no corrupted frame.
"""

from __future__ import annotations

import asyncio
import html
import json
from pathlib import Path

import aiohttp
from aiohttp import web
from playwright.async_api import Page

from tests.conftest import Account, make_user, serve, upload_video, wait_until_done
from tests.e2e.test_streaming import whole_ladder
from tests.transcoder import media_factory as factory

SIZE = (854, 480)
SECONDS = 4
PLAYED_SECONDS = 1.2
BROWSER_TIMEOUT_MS = 30_000


def _hls_page(gateway_url: str, hls_url: str) -> web.Application:
    """A one-page site with hls.js (from the gateway) attached to a muted `<video>`."""
    script = f"""
      const video = document.getElementById("player");
      const hls = new Hls();
      window.kino = {{ levels: [], errors: [] }};
      hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {{
        window.kino.levels = data.levels.map((level) => level.height);
        video.play();
      }});
      hls.on(Hls.Events.ERROR, (_, data) => window.kino.errors.push(data.details));
      hls.loadSource({json.dumps(hls_url)});
      hls.attachMedia(video);
    """
    document = (
        "<!doctype html><meta charset=utf-8><title>Kino HLS player</title>"
        f'<script src="{html.escape(gateway_url)}/static/vendor/hls.min.js"></script>'
        '<video id="player" muted playsinline></video>'
        f"<script>{script}</script>"
    )

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=document, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    return app


async def test_hls_url_plays_adaptively_through_hls_js(
    http: aiohttp.ClientSession, gateway_url: str, page: Page, tmp_path: Path
) -> None:
    account: Account = await make_user(http, gateway_url)
    source = await asyncio.to_thread(
        factory.make_clip, tmp_path / "clip.mp4", seconds=SECONDS, size=SIZE, fps=25
    )
    hash_id = await upload_video(http, gateway_url, account, source.read_bytes())
    assert (await wait_until_done(http, gateway_url, account, hash_id))[0] == "listed"
    record = await whole_ladder(http, gateway_url, account, hash_id)

    async with serve(_hls_page(gateway_url, record["hls_url"])) as site:
        await page.goto(f"{site}/")
        await page.wait_for_function(
            f"() => document.getElementById('player').currentTime > {PLAYED_SECONDS}"
            " || window.kino.errors.length > 0",
            timeout=BROWSER_TIMEOUT_MS,
        )
        state = await page.evaluate(
            """() => {
                const v = document.getElementById("player");
                const q = v.getVideoPlaybackQuality();
                return { time: v.currentTime, width: v.videoWidth, levels: window.kino.levels,
                         errors: window.kino.errors, corrupted: q.corruptedVideoFrames };
            }"""
        )
    assert state["errors"] == [], state
    assert state["time"] > PLAYED_SECONDS, state
    assert sorted(state["levels"], reverse=True) == [480, 360, 240], state
    assert state["width"] > 0, state
    assert state["corrupted"] == 0, state
