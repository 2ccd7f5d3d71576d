"""The processing pipeline through the whole stack: what gets refused and why, the
remux fast path versus transcoding, duplicate deliveries, and pagination."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aio_pika
import aiohttp
import av
import pytest

from devstack.services import RunningServices
from devstack.stores import StoreEndpoints
from shared.events import Envelope, VideoUploaded
from tests.conftest import (
    Account,
    events_handled,
    my_videos,
    upload_video,
    wait_until_done,
)
from tests.polling import eventually
from tests.transcoder.media_factory import make_audio_only, make_clip


async def _download(http: aiohttp.ClientSession, url: str, path: Path) -> Path:
    async with http.get(url) as response:
        assert response.status == 200
        await asyncio.to_thread(path.write_bytes, await response.read())
    return path


async def _watch_url(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, hash_id: str
) -> str:
    async with http.get(
        f"{gateway_url}/video/watch/",
        params={"user_id": account.id, "hash_id": hash_id},
        headers=account.auth,
    ) as response:
        assert response.status == 200
        return str((await response.json())["watchable_url"])


def _packet_sizes(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [p.size for p in container.demux(stream) if p.size]


@pytest.mark.parametrize(
    ("kind", "reason", "codes"),
    [
        ("not media", "file is not a media file", {"not_media"}),
        # Cut before its index (`moov` last) it is no MP4 at all; after it, corrupt.
        ("truncated mp4", None, {"not_media", "corrupt_media"}),
        ("audio only", "no video stream", {"no_video_stream"}),
    ],
)
async def test_unplayable_uploads_end_with_a_reason(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    tmp_path: Path,
    kind: str,
    reason: str | None,
    codes: set[str],
) -> None:
    if kind == "not media":
        data, content_type = os.urandom(4096), "video/mp4"
    elif kind == "truncated mp4":
        make_clip(tmp_path / "full.mp4", seconds=2)
        whole = (tmp_path / "full.mp4").read_bytes()
        data, content_type = whole[: len(whole) // 2], "video/mp4"
    else:
        make_audio_only(tmp_path / "voice.m4a", seconds=2)
        data, content_type = (tmp_path / "voice.m4a").read_bytes(), "video/mp4"
    hash_id = await upload_video(http, gateway_url, account, data, content_type=content_type)
    outcome, record = await wait_until_done(http, gateway_url, account, hash_id)
    assert outcome == "failed"
    assert record["failure_reason"]
    if reason is not None:
        assert record["failure_reason"] == reason
    assert record["status"] == "failed"
    assert record["failure_code"] in codes
    assert set(record) == {
        "hash_id",
        "user_id",
        "file_name",
        "upload_time",
        "failure_reason",
        "status",
        "failure_code",
    }


async def test_h264_aac_mp4_is_remuxed_not_reencoded(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, tmp_path: Path
) -> None:
    source = tmp_path / "source.mp4"
    make_clip(source, seconds=2)
    hash_id = await upload_video(http, gateway_url, account, source.read_bytes())
    outcome, _ = await wait_until_done(http, gateway_url, account, hash_id)
    assert outcome == "listed"
    playback = await _download(
        http, await _watch_url(http, gateway_url, account, hash_id), tmp_path / "out.mp4"
    )
    # Re-encoding would change the compressed frames; the fast path copies them.
    assert _packet_sizes(playback) == _packet_sizes(source)


async def test_vp9_webm_is_transcoded_to_h264_mp4(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, tmp_path: Path
) -> None:
    source = tmp_path / "source.webm"
    make_clip(source, seconds=2, video_codec="libvpx-vp9", container="webm", audio_codec="libopus")
    hash_id = await upload_video(
        http, gateway_url, account, source.read_bytes(), content_type="video/webm"
    )
    outcome, video = await wait_until_done(http, gateway_url, account, hash_id)
    assert outcome == "listed"
    assert video["video_type"] == "video/mp4"
    playback = await _download(
        http, await _watch_url(http, gateway_url, account, hash_id), tmp_path / "out.mp4"
    )
    with av.open(str(playback)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        assert sum(1 for _ in container.decode(video=0)) == 50


async def test_a_duplicated_video_uploaded_event_makes_one_video(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    tmp_path: Path,
    stores: StoreEndpoints,
    namespace: str,
    stack: RunningServices,
) -> None:
    make_clip(tmp_path / "a.mp4", seconds=1)
    hash_id = await upload_video(http, gateway_url, account, (tmp_path / "a.mp4").read_bytes())
    outcome, first = await wait_until_done(http, gateway_url, account, hash_id)
    assert outcome == "listed"
    # The same event again, as a broker redelivery or a second detection would bring it.
    event = VideoUploaded(
        video_id=hash_id,
        user_id=account.id,
        object_key=f"incoming/{hash_id}",
        file_name="a.mp4",
        content_type="video/mp4",
    )
    envelope = Envelope.wrap(event, correlation_id="duplicate-test")
    catalog_queue = f"{namespace}.catalog.video-results"
    results_before = await events_handled(http, stack.urls["catalog"], catalog_queue)
    connection = await aio_pika.connect(stores.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"kino.{namespace}")
        await exchange.publish(
            aio_pika.Message(envelope.model_dump_json().encode()), routing_key=event.event_type
        )

    # The transcoder redoes the job (its upload is gone by now, so it reports a failure)
    # and catalog handles that result: wait for catalog to have acked one more result.
    async def result_handled() -> bool:
        return await events_handled(http, stack.urls["catalog"], catalog_queue) > results_before

    await eventually(result_handled, within=30)
    mine = await my_videos(http, gateway_url, account)
    assert [v["hash_id"] for v in mine["videos"]] == [hash_id]
    assert mine["unprocessed_videos"] == []
    assert mine["videos"][0]["listing_time"] == first["listing_time"]
