"""Fair share through the gateway: one owner's backlog does not make another owner
wait behind it. Owner A queues 10 trims, then owner B one: with at most 2 of A's jobs
at the transcoder at once (`KINO_JOBS_PER_OWNER_IN_FLIGHT`), B's is done before A's
third."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.conftest import Account, make_user
from tests.e2e.test_trimming_api import post_video, requests_of, trim_form
from tests.polling import eventually
from tests.transcoder.media_factory import make_clip

A_JOBS = 10


async def _done(http: aiohttp.ClientSession, gateway_url: str, account: Account) -> int:
    requests = await requests_of(http, gateway_url, account)
    return sum(r["attributes"]["status"] == "done" for r in requests)


async def test_another_owners_job_does_not_wait_behind_a_backlog(
    http: aiohttp.ClientSession, gateway_url: str, tmp_path: Path
) -> None:
    make_clip(tmp_path / "clip.mp4", seconds=4)
    clip = (tmp_path / "clip.mp4").read_bytes()
    owner_a, owner_b = await make_user(http, gateway_url), await make_user(http, gateway_url)
    for _ in range(A_JOBS):
        form = trim_form(clip, start="0.5", duration="3")
        assert (await post_video(http, gateway_url, owner_a, form))[0] == 201
    assert (await post_video(http, gateway_url, owner_b, trim_form(clip)))[0] == 201

    a_done_when_b_done: int | None = None
    while a_done_when_b_done is None:
        a_done = await _done(http, gateway_url, owner_a)
        if await _done(http, gateway_url, owner_b) == 1:
            a_done_when_b_done = a_done
        else:
            assert a_done < 3, "owner A's third job ended before owner B's only one"
            await asyncio.sleep(0.05)

    assert a_done_when_b_done <= 2

    async def all_of_a_done() -> bool:
        return await _done(http, gateway_url, owner_a) == A_JOBS

    await eventually(all_of_a_done, within=120)
