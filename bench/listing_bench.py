"""Upload landed → listed, through a running Kino (`make run`, or `KINO_URL`): what a
user waits between storage answering their upload and the video being watchable.

Each run registers a user, asks for upload instructions, POSTs a generated clip to
storage and polls `/video/my/` every 20 ms until the video is listed (or failed); the
time counts from the storage's answer. Each run then waits, uncounted, for the rest of
the video's ladder, so the next one finds the transcoder idle (one transcoder works on
one job at a time: an upload landing during another video's remaining rungs waits for
them). Two sources, 60 s of 720p30 each: an H.264/AAC
MP4 (a 2 s GOP; its own rung is copied, so it is listed as soon as that copy is
stored) and a VP9/Opus WebM (every rung encoded; the quick-start rung first). Without a
running stack these are SKIPPED, saying so; the media benchmarks do not need one.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import aiohttp

from bench.media_bench import (
    CLIP_FPS,
    TRIM_CLIP_KEYINT,
    TRIM_CLIP_SIZE,
    BenchContext,
    Benchmark,
    Ratio,
    make_bench_clip,
)

KINO_URL = os.environ.get("KINO_URL", "http://127.0.0.1:8080")
LISTED_CLIP_SECONDS = 60.0
_PASSWORD = "bench-password-1234"
_POLL_SECONDS = 0.02
_GIVE_UP_SECONDS = 300.0


def landed_to_listed_h264(ctx: BenchContext) -> Ratio:
    """Seconds from an H.264/AAC MP4 landing in storage to its listing (its own rung
    copied: no encoding before it is watchable)."""
    name, target = "landed → listed, 60 s 720p H.264 (s)", "<= 1.5"
    return _listed(ctx, name, target, "listed.mp4", ("libx264", "aac"), "video/mp4", 1.0)


def landed_to_listed_vp9(ctx: BenchContext) -> Ratio:
    """Seconds from a VP9/Opus WebM landing to its listing, ÷ the clip's duration (its
    quick-start rung encoded first, the rest after)."""
    name, target = "landed → listed, 60 s 720p VP9 / length", "<= 0.35"
    return _listed(
        ctx, name, target, "listed.webm", ("libvpx-vp9", "libopus"), "video/webm",
        LISTED_CLIP_SECONDS,
    )  # fmt: skip


def _listed(
    ctx: BenchContext,
    name: str,
    target: str,
    file_name: str,
    codecs: tuple[str, str],
    content_type: str,
    per: float,
) -> Ratio:
    source = ctx.workdir / file_name
    if not source.exists():
        print(f"  generating a {TRIM_CLIP_SIZE[1]}p {LISTED_CLIP_SECONDS:g} s {codecs[0]} clip...")
        make_bench_clip(
            source, LISTED_CLIP_SECONDS, TRIM_CLIP_SIZE, keyint=TRIM_CLIP_KEYINT, codecs=codecs
        )
    try:
        runs = [asyncio.run(_landed_to_listed(source, content_type)) for _ in range(ctx.rounds)]
    except aiohttp.ClientConnectionError:
        return Ratio(name, None, target, f"no Kino at {KINO_URL}: start `make run` first")
    best = min(runs)
    detail = (
        f"best of {ctx.rounds}: {best:.2f} s ({', '.join(f'{r:.2f}' for r in runs)} s); "
        f"{source.stat().st_size // 1024} KiB, {CLIP_FPS} fps, through {KINO_URL}"
    )
    return Ratio(name, best / per, target, detail)


async def _landed_to_listed(source: Path, content_type: str) -> float:
    data = await asyncio.to_thread(source.read_bytes)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        auth = await _signed_in(http)
        async with http.get(
            f"{KINO_URL}/video/upload/",
            params={"file_content_type": content_type, "file_name": source.name},
            headers=auth,
        ) as response:
            response.raise_for_status()
            instructions = await response.json()
        form = aiohttp.FormData()
        for field, value in instructions["signatures"].items():
            form.add_field(field, value)
        form.add_field("file", data, filename=source.name, content_type=content_type)
        async with http.post(instructions["url"], data=form) as stored:
            stored.raise_for_status()
        landed = time.perf_counter()
        hash_id = str(instructions["signatures"]["key"]).removeprefix("incoming/")
        while time.perf_counter() - landed < _GIVE_UP_SECONDS:
            async with http.get(f"{KINO_URL}/video/my/", headers=auth) as response:
                mine = await response.json()
            if any(video["hash_id"] == hash_id for video in mine["videos"]):
                listed = time.perf_counter() - landed
                await _ladder_done(http, auth, mine["videos"][0]["user_id"], hash_id)
                return listed
            failed = [v for v in mine["unprocessed_videos"] if v["hash_id"] == hash_id]
            if failed and failed[0].get("failure_reason"):
                raise RuntimeError(f"the upload failed: {failed[0]['failure_reason']}")
            await asyncio.sleep(_POLL_SECONDS)
        raise RuntimeError(f"not listed within {_GIVE_UP_SECONDS:g} s")


async def _ladder_done(
    http: aiohttp.ClientSession, auth: dict[str, str], user_id: str, hash_id: str
) -> None:
    """Wait (uncounted) for the rest of the ladder: the next run then finds the
    transcoder idle instead of queued behind this video's remaining rungs."""
    while True:
        async with http.get(
            f"{KINO_URL}/video/watch/",
            params={"user_id": user_id, "hash_id": hash_id},
            headers=auth,
        ) as response:
            ladder = (await response.json()).get("ladder") or {}
        if not ladder.get("pending"):
            return
        await asyncio.sleep(0.2)


async def _signed_in(http: aiohttp.ClientSession) -> dict[str, str]:
    email = f"bench.{uuid.uuid4().hex[:12]}@example.org"
    account = {"email": email, "password": _PASSWORD}
    async with http.post(
        f"{KINO_URL}/api/v1/users/registration",
        data={**account, "password_confirmation": _PASSWORD},
    ) as response:
        response.raise_for_status()
    async with http.post(f"{KINO_URL}/api/v1/users/session", data=account) as response:
        response.raise_for_status()
        token = (await response.json())["data"]["attributes"]["access"]
    return {"Authorization": f"Bearer {token}"}


LISTING_BENCHMARKS: list[tuple[str, Benchmark]] = [
    ("listed-h264", landed_to_listed_h264),
    ("listed-vp9", landed_to_listed_vp9),
]
