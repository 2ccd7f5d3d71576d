"""Retrying a failed upload through the gateway, as its owner would: the transcoder
kept the failed file, so the retry processes it again (and a file that is not media
fails again, with the same code)."""

from __future__ import annotations

import os
from typing import Any

import aiohttp

from tests.conftest import Account, make_user, my_videos, upload_video, wait_until_done
from tests.polling import eventually


async def test_a_failed_upload_is_processed_again_on_retry(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    account: Account = await make_user(http, gateway_url)
    hash_id = await upload_video(http, gateway_url, account, os.urandom(4096))
    outcome, first = await wait_until_done(http, gateway_url, account, hash_id)
    assert outcome == "failed"
    assert first["failure_code"] == "not_media"

    async with http.post(
        f"{gateway_url}/video/my/{hash_id}/retry", headers=account.auth
    ) as response:
        assert response.status == 202
        assert (await response.json())["status"] == "processing"

    async def failed_again() -> dict[str, Any] | None:
        mine = await my_videos(http, gateway_url, account)
        [video] = mine["unprocessed_videos"]
        return video if video["status"] == "failed" else None

    again = await eventually(failed_again, within=60)
    # The file was there to process again: it failed as media, not as a missing file.
    assert again["failure_code"] == "not_media"
    async with http.post(f"{gateway_url}/video/my/{hash_id}/retry") as response:
        assert response.status == 401
