"""The hosting API end to end through the gateway, with two users, real storage, the
real broker and the real transcoder: upload → listed → explore → watch → update →
private → delete."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import av
import pytest
from minio import Minio

from tests.conftest import Account, make_user, my_videos, upload_video, wait_until_done
from tests.polling import eventually
from tests.transcoder.media_factory import make_clip


@pytest.fixture
async def alice(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    return await make_user(http, gateway_url)


@pytest.fixture
async def bob(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    return await make_user(http, gateway_url)


def _clip_bytes(tmp_path: Path, name: str = "clip.mp4", **options: object) -> bytes:
    path = tmp_path / name
    make_clip(path, **options)  # type: ignore[arg-type]
    return path.read_bytes()


async def _explore(
    http: aiohttp.ClientSession, gateway_url: str, account: Account | None, **params: str
) -> set[str]:
    """hash_ids on every page of explore."""
    seen: set[str] = set()
    cursor: str | None = None
    headers = account.auth if account else {}
    while True:
        query = {**params, **({"next": cursor} if cursor else {})}
        async with http.get(f"{gateway_url}/video/explore/", params=query, headers=headers) as r:
            assert r.status == 200, await r.text()
            page = await r.json()
        seen.update(v["hash_id"] for v in page["videos"])
        cursor = page.get("next")
        if not cursor:
            return seen


async def _watch(
    http: aiohttp.ClientSession, gateway_url: str, account: Account | None, owner: str, hash_id: str
) -> aiohttp.ClientResponse:
    return await http.get(
        f"{gateway_url}/video/watch/",
        params={"user_id": owner, "hash_id": hash_id},
        headers=account.auth if account else {},
    )


async def test_upload_list_watch_update_private_delete(
    http: aiohttp.ClientSession,
    gateway_url: str,
    alice: Account,
    bob: Account,
    tmp_path: Path,
    s3: Minio,
    bucket: str,
) -> None:
    hash_id = await upload_video(
        http, gateway_url, alice, _clip_bytes(tmp_path, seconds=2), file_name="holiday.mp4"
    )
    outcome, video = await wait_until_done(http, gateway_url, alice, hash_id)
    assert outcome == "listed", video
    assert video["user_id"] == alice.id
    assert video["file_name"] == video["title"] == "holiday.mp4"
    assert video["duration_seconds"] == 2
    assert video["video_type"] == "video/mp4"
    assert video["size_in_bytes"] > 0
    assert video["is_private"] is False
    assert video["upload_time"].endswith("Z")
    assert video["listing_time"] >= video["upload_time"]

    # The thumbnail is a presigned, directly fetchable JPEG.
    async with http.get(video["thumbnail_url"]) as response:
        assert response.status == 200
        jpeg = await response.read()
    assert jpeg[:2] == b"\xff\xd8"
    (tmp_path / "thumb.jpg").write_bytes(jpeg)
    with av.open(str(tmp_path / "thumb.jpg")) as image:
        assert next(image.decode(video=0)).width > 0

    # Others see it; its owner only with include_my.
    assert hash_id in await _explore(http, gateway_url, bob)
    assert hash_id in await _explore(http, gateway_url, None)
    assert hash_id not in await _explore(http, gateway_url, alice)
    assert hash_id in await _explore(http, gateway_url, alice, include_my="true")
    async with http.get(f"{gateway_url}/video/user/{alice.id}") as response:
        assert response.status == 200
        assert [v["hash_id"] for v in (await response.json())["videos"]] == [hash_id]

    # Watching: a presigned URL that honours Range and decodes to the right duration.
    response = await _watch(http, gateway_url, bob, alice.id, hash_id)
    assert response.status == 200
    record = await response.json()
    assert record["video"]["hash_id"] == hash_id
    async with http.get(record["watchable_url"], headers={"Range": "bytes=0-99"}) as ranged:
        assert ranged.status == 206
        assert len(await ranged.read()) == 100
    async with http.get(record["watchable_url"]) as full:
        assert full.status == 200
        (tmp_path / "watched.mp4").write_bytes(await full.read())
    with av.open(str(tmp_path / "watched.mp4")) as watched:
        stream = watched.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in watched.decode(stream))
    assert frames == 50  # 2 s at 25 fps

    # Owner actions: only title, description, is_private change; others get 404.
    changes = {"title": "Beach", "description": "Sun.", "is_private": True, "user_id": bob.id}
    async with http.put(f"{gateway_url}/video/my/{hash_id}", json=changes, headers=bob.auth) as r:
        assert r.status == 404
    async with http.put(f"{gateway_url}/video/my/{hash_id}", json=changes, headers=alice.auth) as r:
        assert r.status == 204
    [updated] = (await my_videos(http, gateway_url, alice))["videos"]
    assert (updated["title"], updated["description"], updated["is_private"]) == (
        "Beach",
        "Sun.",
        True,
    )
    assert updated["user_id"] == alice.id

    # Private: only its owner can watch; it leaves the public listings.
    assert (await _watch(http, gateway_url, bob, alice.id, hash_id)).status == 403
    assert (await _watch(http, gateway_url, None, alice.id, hash_id)).status == 403
    assert (await _watch(http, gateway_url, alice, alice.id, hash_id)).status == 200
    assert hash_id not in await _explore(http, gateway_url, bob)
    async with http.get(f"{gateway_url}/video/user/{alice.id}") as response:
        assert (await response.json())["videos"] == []

    # Delete: not by others; then the objects go too.
    async with http.delete(f"{gateway_url}/video/my/{hash_id}", headers=bob.auth) as r:
        assert r.status == 404
    async with http.delete(f"{gateway_url}/video/my/{hash_id}", headers=alice.auth) as r:
        assert r.status == 204
    assert (await _watch(http, gateway_url, alice, alice.id, hash_id)).status == 404
    assert await my_videos(http, gateway_url, alice) == {"unprocessed_videos": [], "videos": []}
    await _assert_objects_removed(s3, bucket, hash_id)


async def _assert_objects_removed(s3: Minio, bucket: str, hash_id: str) -> None:
    def names() -> list[str]:
        # SeaweedFS lists an emptied folder as `playback/<hash_id>/`, not an object.
        return [
            str(o.object_name)
            for prefix in ("playback/", "thumbnails/", "incoming/")
            for o in s3.list_objects(bucket, prefix=prefix, recursive=True)
            if not str(o.object_name).endswith("/")
        ]

    async def gone() -> bool:
        return not any(hash_id in name for name in await asyncio.to_thread(names))

    assert await eventually(gone, within=20)
