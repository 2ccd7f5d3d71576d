"""A resumable upload end to end, as a client with a flaky connection makes it: a real
video sent in parts through presigned PUTs straight to storage, cut off after the
first part, resumed from what storage holds, completed, processed and watched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import av

from tests.conftest import (
    PART_SIZE,
    UPLOAD_LIMIT,
    make_user,
    send_upload_part,
    wait_until_done,
)
from tests.transcoder.media_factory import make_two_part_clip


async def _json(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    return dict(await response.json())


async def test_an_interrupted_upload_resumes_and_the_video_is_processed(
    http: aiohttp.ClientSession, gateway_url: str, tmp_path: Path
) -> None:
    clip = make_two_part_clip(tmp_path / "long-take.mp4")
    data = clip.read_bytes()
    assert PART_SIZE < len(data) <= UPLOAD_LIMIT
    account = await make_user(http, gateway_url)

    body = {"file_name": clip.name, "file_content_type": "video/mp4", "size": len(data)}
    async with http.post(
        f"{gateway_url}/video/upload/multipart", json=body, headers=account.auth
    ) as response:
        upload = await _json(response, 201)
    assert upload["parts"] == 2
    base = f"{gateway_url}/video/upload/multipart/{upload['hash_id']}"
    hash_id = upload["hash_id"]
    await send_upload_part(http, gateway_url, account.auth, hash_id, 1, data[:PART_SIZE])
    # The connection drops here. Later the client asks what storage holds...
    async with http.get(base, headers=account.auth) as response:
        state = await _json(response, 200)
    stored = {part["part_number"] for part in state["uploaded_parts"]}
    assert stored == {1}
    # ... and sends only what is missing.
    for number in range(1, upload["parts"] + 1):
        if number not in stored:
            start = (number - 1) * upload["part_size"]
            part = data[start : start + PART_SIZE]
            await send_upload_part(http, gateway_url, account.auth, hash_id, number, part)
    async with http.post(f"{base}/complete", headers=account.auth) as response:
        accepted = await _json(response, 202)
    assert accepted["status"] == "processing"

    outcome, video = await wait_until_done(http, gateway_url, account, upload["hash_id"])
    assert outcome == "listed", video
    async with http.get(
        f"{gateway_url}/video/watch/",
        params={"user_id": account.id, "hash_id": upload["hash_id"]},
        headers=account.auth,
    ) as response:
        watched = await _json(response, 200)
    async with http.get(watched["watchable_url"]) as response:
        played = tmp_path / "played.mp4"
        played.write_bytes(await response.read())
    with av.open(str(played)) as container:
        assert container.duration is not None
        assert abs(container.duration / av.time_base - 3.5) < 0.1
