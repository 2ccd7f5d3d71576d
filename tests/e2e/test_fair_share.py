"""Fair share through the gateway: one owner's backlog does not make another owner
wait behind it. Owner A queues 10 trims, then owner B one: with at most 2 of A's jobs
at the transcoder at once (`KINO_JOBS_PER_OWNER_IN_FLIGHT`), B's job waits for at most
the 2 of A's that were in flight when it came, not for A's backlog.

Counted from B's arrival, not from zero: A's first jobs may end while A's backlog is
still being uploaded."""

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
    posted = await asyncio.gather(
        *(
            post_video(http, gateway_url, owner_a, trim_form(clip, start="0.5", duration="3"))
            for _ in range(A_JOBS)
        )
    )
    assert [status for status, _ in posted] == [201] * A_JOBS
    assert (await post_video(http, gateway_url, owner_b, trim_form(clip)))[0] == 201
    a_done_when_b_came = await _done(http, gateway_url, owner_a)
    assert a_done_when_b_came <= A_JOBS // 2, "A's backlog drained before B came: no test"

    a_done_when_b_done: int | None = None
    while a_done_when_b_done is None:
        a_done = await _done(http, gateway_url, owner_a)
        if await _done(http, gateway_url, owner_b) == 1:
            a_done_when_b_done = a_done
        else:
            assert a_done - a_done_when_b_came <= 2, "B's job waited behind A's backlog"
            await asyncio.sleep(0.05)

    assert a_done_when_b_done - a_done_when_b_came <= 2

    async def all_of_a_done() -> bool:
        return await _done(http, gateway_url, owner_a) == A_JOBS

    await eventually(all_of_a_done, within=120)
