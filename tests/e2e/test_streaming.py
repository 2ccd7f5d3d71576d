"""Adaptive streaming through the whole stack: an upload is listed with its first
rendition, the rest of its ladder follows, `hls_url` leads to a master playlist of the
rungs made and media playlists whose byte ranges are the rendition files' fragments,
every fragment decodes, a private video's links work only as signed and until they
expire, and deleting the video removes every rendition and playlist.

Sources are made by PyAV in the test: a 720p H.264/AAC MP4 (its own rung copied) and a
720p VP9 WebM (every rung encoded, the quick-start rung first).
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import av
import pytest
from minio import Minio

from services.catalog.hosting.playlist_links import PlaylistLinks
from services.catalog.settings import CatalogSettings
from tests.conftest import Account, make_user, upload_video, wait_until_done
from tests.polling import eventually
from tests.transcoder import media_factory as factory

SIZE = (1280, 720)
SECONDS = 4
FPS = 25
LADDER = [720, 480, 360, 240]


@pytest.fixture
async def account(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    return await make_user(http, gateway_url)


async def watch(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, hash_id: str
) -> dict[str, Any]:
    async with http.get(
        f"{gateway_url}/video/watch/",
        params={"user_id": account.id, "hash_id": hash_id},
        headers=account.auth,
    ) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def whole_ladder(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, hash_id: str
) -> dict[str, Any]:
    """The watch record once no rung is pending any more."""

    async def complete() -> dict[str, Any] | None:
        record = await watch(http, gateway_url, account, hash_id)
        return record if record["ladder"]["pending"] == [] else None

    return await eventually(complete, within=90)


async def fetch(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, bytes]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.read()


def attributes(line: str) -> dict[str, str]:
    return dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))


def master_variants(text: str, base: str) -> list[tuple[dict[str, str], str]]:
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    return [
        (attributes(line), urljoin(base, lines[index + 1]))
        for index, line in enumerate(lines)
        if line.startswith("#EXT-X-STREAM-INF:")
    ]


def media_segments(text: str) -> tuple[tuple[str, int, int], list[tuple[float, int, int, str]]]:
    """(init URI, size, offset) and every segment's (duration, size, offset, URI)."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert lines[-1] == "#EXT-X-ENDLIST"
    [mapping] = [attributes(line) for line in lines if line.startswith("#EXT-X-MAP:")]
    init_size, init_offset = mapping["BYTERANGE"].strip('"').split("@")
    init = (mapping["URI"].strip('"'), int(init_size), int(init_offset))
    segments = []
    for index, line in enumerate(lines):
        if line.startswith("#EXTINF:"):
            size, offset = lines[index + 1].removeprefix("#EXT-X-BYTERANGE:").split("@")
            duration = float(line.removeprefix("#EXTINF:").rstrip(","))
            segments.append((duration, int(size), int(offset), lines[index + 2]))
    return init, segments


def decoded_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def stored_under(s3: Minio, bucket: str, prefix: str) -> dict[str, int]:
    listed = s3.list_objects(bucket, prefix=prefix, recursive=True)
    return {
        str(o.object_name): int(o.size or 0) for o in listed if not str(o.object_name).endswith("/")
    }


Make = Callable[[Path], Path]
SOURCES: dict[str, tuple[Make, str, int]] = {
    # name → (how it is made, its content type, the rung listed first)
    "h264 mp4, own rung copied": (
        lambda d: factory.make_clip(d / "hd.mp4", seconds=SECONDS, size=SIZE, fps=FPS),
        "video/mp4",
        720,
    ),
    "vp9 webm, quick-start rung first": (
        lambda d: factory.make_clip(
            d / "hd.webm",
            seconds=SECONDS,
            size=SIZE,
            fps=FPS,
            video_codec="libvpx-vp9",
            audio_codec="libopus",
            video_options={"deadline": "realtime", "cpu-used": "8"},
        ),
        "video/webm",
        360,
    ),
}


@pytest.mark.parametrize("name", list(SOURCES))
async def test_the_ladder_streams_by_byte_range_and_nothing_is_stored_twice(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    s3: Minio,
    bucket: str,
    tmp_path: Path,
    name: str,
) -> None:
    make, content_type, first_rung = SOURCES[name]
    source = await asyncio.to_thread(make, tmp_path)
    hash_id = await upload_video(
        http, gateway_url, account, source.read_bytes(), file_name=source.name,
        content_type=content_type,
    )  # fmt: skip
    outcome, _ = await wait_until_done(http, gateway_url, account, hash_id)
    assert outcome == "listed"

    first = await watch(http, gateway_url, account, hash_id)
    made = [rung["height"] for rung in first["ladder"]["renditions"]]
    assert first_rung in made  # the first rung listed; the others may have followed
    record = await whole_ladder(http, gateway_url, account, hash_id)
    ladder = record["ladder"]
    assert [rung["height"] for rung in ladder["renditions"]] == LADDER
    assert "failure_reason" not in ladder  # None fields are left out
    # The top rung's file is the progressive download.
    assert urlsplit(record["watchable_url"]).path.endswith(f"/playback/{hash_id}/720p.mp4")

    status, master = await fetch(http, record["hls_url"])
    assert status == 200
    variants = master_variants(master.decode(), record["hls_url"])
    assert [v["RESOLUTION"] for v, _ in variants] == [
        f"{round(h * 16 / 9 / 2) * 2}x{h}" for h in LADDER
    ]
    for info, url in variants:
        assert int(info["BANDWIDTH"]) >= int(info["AVERAGE-BANDWIDTH"]) > 0
        assert info["CODECS"].startswith('"avc1.')
        assert "mp4a.40.2" in info["CODECS"]
        status, playlist = await fetch(http, url)
        assert status == 200, url
        (init_uri, init_size, init_offset), segments = media_segments(playlist.decode())
        assert init_offset == 0
        assert sum(duration for duration, *_ in segments) == pytest.approx(SECONDS, abs=0.1)
        status, init = await fetch(http, init_uri, Range=f"bytes=0-{init_size - 1}")
        assert (status, len(init)) == (206, init_size)
        position = init_size
        for _, size, offset, uri in segments:
            assert offset == position  # fragments back to back, from the init segment on
            position += size
            status, fragment = await fetch(http, uri, Range=f"bytes={offset}-{offset + size - 1}")
            assert (status, len(fragment)) == (206, size)
            assert fragment[4:8] in (b"moof", b"styp")  # the range lands on a fragment
            assert await asyncio.to_thread(decoded_frames, init + fragment) > 0
        status, whole = await fetch(http, init_uri)
        assert (status, len(whole)) == (200, position)  # the ranges cover the file

    # Stored for playback: the renditions and their playlists; no second MP4.
    stored = stored_under(s3, bucket, f"playback/{hash_id}")
    renditions = {key: size for key, size in stored.items() if key.endswith(".mp4")}
    assert sorted(renditions) == sorted(f"playback/{hash_id}/{h}p.mp4" for h in LADDER)
    assert sum(stored.values()) <= 1.1 * sum(renditions.values())


async def test_a_private_videos_links_work_only_signed_and_until_they_expire(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    make_settings: Callable[..., Any],
    s3: Minio,
    bucket: str,
    tmp_path: Path,
) -> None:
    source = await asyncio.to_thread(
        factory.make_clip, tmp_path / "small.mp4", seconds=2, size=(320, 240), fps=FPS
    )
    hash_id = await upload_video(http, gateway_url, account, source.read_bytes())
    assert (await wait_until_done(http, gateway_url, account, hash_id))[0] == "listed"
    async with http.put(
        f"{gateway_url}/video/my/{hash_id}", json={"is_private": True}, headers=account.auth
    ) as response:
        assert response.status in (200, 204), await response.text()
    record = await whole_ladder(http, gateway_url, account, hash_id)
    hls_url = record["hls_url"]
    assert (await fetch(http, hls_url))[0] == 200

    stranger = await make_user(http, gateway_url)
    async with http.get(
        f"{gateway_url}/video/watch/",
        params={"user_id": account.id, "hash_id": hash_id},
        headers=stranger.auth,
    ) as response:
        assert response.status == 403  # no record, so no link, for anyone else

    playlist_base = hls_url.split("?")[0]
    assert (await fetch(http, playlist_base))[0] == 403  # unsigned
    tampered = re.sub(r"signature=[^&]+", "signature=" + "A" * 43, hls_url)
    assert (await fetch(http, tampered))[0] == 403
    other_video = hls_url.replace(hash_id, hash_id[::-1])
    assert (await fetch(http, other_video))[0] == 403  # a link names its video

    links = PlaylistLinks(make_settings(CatalogSettings).internal_secret.get_secret_value())
    expired = links.sign(hash_id, datetime.now(UTC) - timedelta(seconds=1))
    status, body = await fetch(http, f"{playlist_base}?{expired.query}")
    assert status == 403
    assert b"expired" in body
    media = playlist_base.replace("master.m3u8", "240p.m3u8")
    assert (await fetch(http, f"{media}?{expired.query}"))[0] == 403
    current = links.sign(hash_id, datetime.now(UTC) + timedelta(seconds=60))
    assert (await fetch(http, f"{media}?{current.query}"))[0] == 200

    # Deleting the video removes every rendition and playlist.
    async with http.delete(f"{gateway_url}/video/my/{hash_id}", headers=account.auth) as r:
        assert r.status in (200, 204), await r.text()

    async def emptied() -> bool | None:
        return True if not stored_under(s3, bucket, f"playback/{hash_id}") else None

    await eventually(emptied, within=30)
    assert (await fetch(http, f"{media}?{current.query}"))[0] == 404
