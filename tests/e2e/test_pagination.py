"""Keyset pagination of the hosting listings (the session's page size is 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Account, make_user, upload_video, wait_until_done
from tests.transcoder.media_factory import make_clip


@pytest.fixture
async def uploader(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    return await make_user(http, gateway_url)


async def _publish_videos(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, clip: bytes, count: int
) -> list[str]:
    hash_ids = [await upload_video(http, gateway_url, account, clip) for _ in range(count)]
    for hash_id in hash_ids:
        outcome, _ = await wait_until_done(http, gateway_url, account, hash_id)
        assert outcome == "listed"
    return hash_ids


async def _page(http: aiohttp.ClientSession, url: str, cursor: str | None = None) -> dict[str, Any]:
    async with http.get(url, params={"next": cursor} if cursor else {}) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def test_every_video_exactly_once_while_new_ones_arrive(
    http: aiohttp.ClientSession, gateway_url: str, uploader: Account, tmp_path: Path
) -> None:
    await asyncio.to_thread(make_clip, tmp_path / "c.mp4", seconds=1)
    clip = (tmp_path / "c.mp4").read_bytes()
    originals = await _publish_videos(http, gateway_url, uploader, clip, 5)
    listing = f"{gateway_url}/video/user/{uploader.id}"

    first = await _page(http, listing)
    assert len(first["videos"]) == 3
    assert first["next"]
    newcomers = await _publish_videos(http, gateway_url, uploader, clip, 2)
    second = await _page(http, listing, first["next"])
    assert "next" not in second
    seen = [v["hash_id"] for v in first["videos"] + second["videos"]]
    assert sorted(seen) == sorted(originals)  # each exactly once, no newcomer
    # Newest first, by listing time.
    times = [v["listing_time"] for v in first["videos"] + second["videos"]]
    assert times == sorted(times, reverse=True)

    # A fresh walk sees all seven, newcomers first.
    walk: list[str] = []
    cursor: str | None = None
    while True:
        page = await _page(http, listing, cursor)
        walk += [v["hash_id"] for v in page["videos"]]
        cursor = page.get("next")
        if not cursor:
            break
    assert sorted(walk) == sorted(originals + newcomers)
    assert set(walk[:2]) == set(newcomers)


async def test_tampered_or_foreign_cursors_are_refused(
    http: aiohttp.ClientSession, gateway_url: str, uploader: Account, tmp_path: Path
) -> None:
    await asyncio.to_thread(make_clip, tmp_path / "c.mp4", seconds=1)
    clip = (tmp_path / "c.mp4").read_bytes()
    await _publish_videos(http, gateway_url, uploader, clip, 4)
    listing = f"{gateway_url}/video/user/{uploader.id}"
    cursor = (await _page(http, listing))["next"]
    payload, mac = cursor.split(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    other_user = await make_user(http, gateway_url)
    for bad, url in (
        (f"{flipped}.{mac}", listing),
        ("garbage", listing),
        ("a.b.c", listing),
        ("YQ.é", listing),  # non-ASCII: `YQ.%C3%A9` on the wire
        ("é.é", listing),
        (f"{payload}.{mac}é", listing),
        ("\x00.\x00", listing),
        (cursor, f"{gateway_url}/video/user/{other_user.id}"),  # another listing's cursor
        (cursor, f"{gateway_url}/video/explore/"),
    ):
        async with http.get(url, params={"next": bad}) as response:
            assert response.status == 400, (bad, url)
            assert "cursor" in (await response.json())["detail"].lower()


async def test_unknown_user_is_404(http: aiohttp.ClientSession, gateway_url: str) -> None:
    async with http.get(f"{gateway_url}/video/user/000000000000000000000000") as response:
        assert response.status == 404
        assert await response.json() == {"detail": "User not found"}
