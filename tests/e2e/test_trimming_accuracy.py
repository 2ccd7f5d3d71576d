"""A cut through the whole stack is frame-accurate: upload a source whose every frame
shows its own index, cut at a start that is not on a keyframe, fetch the listed clip.
The clip says what was cut and how: a smart cut (copied groups of pictures) for an
H.264 source, a full re-encode for one whose packets cannot be copied."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import av
import pytest

from tests.conftest import make_user
from tests.e2e.test_trimming_api import post_video, requests_of, trim_form, wait_for_status
from tests.transcoder.media_factory import frame_index, make_clip, make_indexed_clip

FPS = 25
GOP = 25  # keyframes at 0, 1, 2 … s


async def test_the_listed_clip_starts_on_the_exact_frame(
    http: aiohttp.ClientSession, gateway_url: str, tmp_path: Path
) -> None:
    account = await make_user(http, gateway_url)
    source = tmp_path / "indexed.mp4"
    await asyncio.to_thread(make_indexed_clip, source, seconds=6, fps=FPS, gop=GOP, bframes=2)
    start, duration = 2.48, 1.6  # frame 62: twelve frames after a keyframe
    status, _ = await post_video(
        http,
        gateway_url,
        account,
        trim_form(source.read_bytes(), start=str(start), duration=str(duration)),
    )
    assert status == 201
    [request] = await requests_of(http, gateway_url, account)
    done = await wait_for_status(http, gateway_url, account, request["id"], "done", "failed")
    assert done["attributes"]["status"] == "done", done

    async with http.get(f"{gateway_url}/api/v1/users/videos", headers=account.auth) as r:
        [clip] = (await r.json(content_type=None))["data"]
    attributes = clip["attributes"]
    assert attributes["duration"] == "00:00:02"  # 1.6 s, rounded
    assert attributes["cut_method"] == "smart"
    assert "reencode_reason" not in attributes
    assert (attributes["requested_start"], attributes["requested_duration"]) == (start, duration)
    assert attributes["actual_start"] == pytest.approx(start, abs=1e-6)  # frame 62 is at 2.48
    assert attributes["actual_duration"] == pytest.approx(duration, abs=1 / FPS)
    async with http.get(clip["attributes"]["url"]) as download:
        assert download.status == 200
        await asyncio.to_thread((tmp_path / "clip.mp4").write_bytes, await download.read())

    with av.open(str(tmp_path / "clip.mp4")) as clip_file:
        assert clip_file.streams.video[0].codec_context.name == "h264"
        assert len(clip_file.streams.audio) == 1
        assert clip_file.streams.audio[0].codec_context.name == "aac"
        indexes = [frame_index(frame) for frame in clip_file.decode(video=0)]
    assert indexes[0] == round(start * FPS)
    assert abs(len(indexes) - round(duration * FPS)) <= 1
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))  # no frame lost


async def test_a_source_that_cannot_be_copied_is_re_encoded_and_says_so(
    http: aiohttp.ClientSession, gateway_url: str, tmp_path: Path
) -> None:
    account = await make_user(http, gateway_url)
    source = await asyncio.to_thread(
        make_clip, tmp_path / "old.avi", seconds=3, video_codec="mpeg4", audio_codec="libmp3lame"
    )
    form = trim_form(source.read_bytes(), start="0.5", duration="2")
    assert (await post_video(http, gateway_url, account, form))[0] == 201
    [request] = await requests_of(http, gateway_url, account)
    done = await wait_for_status(http, gateway_url, account, request["id"], "done", "failed")
    assert done["attributes"]["status"] == "done", done

    async with http.get(f"{gateway_url}/api/v1/users/videos", headers=account.auth) as r:
        [clip] = (await r.json(content_type=None))["data"]
    attributes = clip["attributes"]
    assert attributes["cut_method"] == "reencode"
    assert attributes["reencode_reason"]  # why: not H.264
    assert (attributes["requested_start"], attributes["requested_duration"]) == (0.5, 2.0)
    assert attributes["actual_start"] == pytest.approx(0.48, abs=1e-6)  # the frame shown at 0.5
    assert attributes["actual_duration"] == pytest.approx(2.0, abs=0.04)
