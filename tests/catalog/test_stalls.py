"""The lease on started jobs: a job whose worker reports nothing for
`KINO_JOB_STALL_SECONDS` (1 s here) is queued again once, then failed `stalled`; a job
that keeps reporting is left alone. The test plays the transcoder's part."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from services.catalog.keys import RECONCILER
from shared.events import JobProgressed
from tests.catalog.conftest import LoneCatalog, unprocessed, upload
from tests.polling import eventually


async def _processing_upload(http: aiohttp.ClientSession, catalog: LoneCatalog) -> str:
    hash_id = (await upload(http, catalog)).removeprefix("incoming/")
    await catalog.app[RECONCILER].run_once()
    assert len(await catalog.uploaded_events()) == 1
    return hash_id


def _report(job_id: str, fraction: float, *, job: str = "video") -> JobProgressed:
    stage = "started" if fraction == 0 else "working"
    return JobProgressed(job=job, id=job_id, stage=stage, fraction=fraction)  # type: ignore[arg-type]


async def test_a_silent_started_job_is_queued_again_once_then_failed_stalled(
    http: aiohttp.ClientSession, catalog: LoneCatalog
) -> None:
    hash_id = await _processing_upload(http, catalog)
    await catalog.publish(_report(hash_id, 0.0))

    async def requeued() -> list[dict[str, Any]]:
        return await catalog.uploaded_events()

    [again] = await eventually(requeued, within=10)
    assert again["data"]["video_id"] == hash_id
    assert again["data"]["attempt"] == 1

    async def failed() -> dict[str, Any] | None:
        [video] = await unprocessed(http, catalog)
        return video if video["status"] == "failed" else None

    video = await eventually(failed, within=10)
    assert video["failure_code"] == "stalled"
    assert video["failure_reason"] == "processing stopped making progress"
    assert await catalog.uploaded_events() == []  # requeued once only


async def test_a_job_that_keeps_reporting_is_not_swept(
    http: aiohttp.ClientSession, catalog: LoneCatalog
) -> None:
    hash_id = await _processing_upload(http, catalog)
    for step in range(10):  # 3 s of reports, three stall times
        await catalog.publish(_report(hash_id, step / 10))
        await asyncio.sleep(0.3)

    [video] = await unprocessed(http, catalog)
    assert video["status"] == "processing"
    assert video["progress"] == 0.9
    assert await catalog.uploaded_events() == []


async def test_a_silent_trim_is_queued_again_then_failed_stalled(
    http: aiohttp.ClientSession, catalog: LoneCatalog
) -> None:
    requested = await catalog.channel.declare_queue(exclusive=True)
    await requested.bind(catalog.settings.amqp_exchange, routing_key="trim.requested")
    form = aiohttp.FormData()
    for name, value in (("name", "clip"), ("trimming_start_time", "1"), ("duration", "2")):
        form.add_field(name, value)
    form.add_field("source_file", b"bytes", filename="a.mp4", content_type="video/mp4")
    async with http.post(
        f"{catalog.url}/api/v1/users/videos", data=form, headers=catalog.headers()
    ) as response:
        assert response.status == 201

    async def next_request() -> dict[str, Any] | None:
        message = await requested.get(fail=False, no_ack=True)
        return None if message is None else dict(json.loads(message.body))

    first = await eventually(next_request)
    trim_id = first["data"]["trim_id"]
    await catalog.publish(_report(trim_id, 0.0, job="trim"))

    again = await eventually(next_request, within=10)
    assert again["data"]["trim_id"] == trim_id

    async def failed() -> dict[str, Any] | None:
        async with http.get(
            f"{catalog.url}/api/v1/users/requests", headers=catalog.headers()
        ) as response:
            [request] = (await response.json(content_type=None))["data"]
        return request if request["attributes"]["status"] == "failed" else None

    request = await eventually(failed, within=10)
    assert request["attributes"]["failure_code"] == "stalled"
