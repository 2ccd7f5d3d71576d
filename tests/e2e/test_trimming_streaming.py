"""Trimming uploads stream gateway → catalog → storage: bounded memory for any size,
and nothing left behind when the client goes away midway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import psutil
from minio import Minio

from devstack.services import RunningServices
from tests.conftest import Account
from tests.e2e.test_trimming_api import source_objects
from tests.polling import eventually

MiB = 1024 * 1024
GiB = 1024 * MiB
#: Growth of resident memory allowed while 1 GiB streams through a service.
MEMORY_BUDGET = 100 * MiB


async def _zeros(total: int, chunk: int = MiB) -> AsyncIterator[bytes]:
    block = bytes(chunk)
    for _ in range(total // chunk):
        yield block


def _multipart(file_stream: AsyncIterator[bytes]) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    for name, value in (("name", "big one"), ("trimming_start_time", "1"), ("duration", "2")):
        part = writer.append(value)
        part.set_content_disposition("form-data", name=name)
    payload = aiohttp.payload.AsyncIterablePayload(file_stream, content_type="video/mp4")
    part = writer.append_payload(payload)
    part.set_content_disposition("form-data", name="source_file", filename="big.mp4")
    return writer


class PeakMemory:
    """Samples the resident memory of some processes until stopped."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.baseline = {name: p.memory_info().rss for name, p in self._processes.items()}
        self.peak = dict(self.baseline)
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            for name, process in self._processes.items():
                self.peak[name] = max(self.peak[name], process.memory_info().rss)
            await asyncio.sleep(0.02)

    def __enter__(self) -> PeakMemory:
        self._task = asyncio.create_task(self._sample())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def growth(self, name: str) -> int:
        return self.peak[name] - self.baseline[name]


async def test_a_1_gib_upload_streams_with_bounded_memory(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    stack: RunningServices,
    s3: Minio,
    bucket: str,
) -> None:
    pids = {name: stack.processes[name].pid for name in ("gateway", "catalog")}
    with PeakMemory(pids) as memory:
        async with http.post(
            f"{gateway_url}/api/v1/users/videos",
            data=_multipart(_zeros(GiB)),
            headers=account.auth,
            timeout=aiohttp.ClientTimeout(total=600),
        ) as response:
            assert response.status == 201, await response.text()
            video_id = (await response.json(content_type=None))["data"]["id"]
    for name in pids:
        print(f"{name}: resident memory grew {memory.growth(name) / MiB:.1f} MiB")
        assert memory.growth(name) < MEMORY_BUDGET, (name, memory.growth(name) // MiB)
    stat = await asyncio.to_thread(s3.stat_object, bucket, f"sources/{video_id}")
    assert stat.size == GiB
    # Zeros are no video: the request fails; then the big source is removed to free disk.
    async with http.get(f"{gateway_url}/api/v1/users/requests", headers=account.auth) as r:
        request_id = (await r.json(content_type=None))["data"][0]["id"]

    async def failed() -> bool:
        async with http.get(f"{gateway_url}/api/v1/users/requests", headers=account.auth) as r:
            [item] = (await r.json(content_type=None))["data"]
        return item["id"] == request_id and item["attributes"]["status"] == "failed"

    await eventually(failed, within=120)
    await asyncio.to_thread(s3.remove_object, bucket, f"sources/{video_id}")


async def test_an_interrupted_upload_leaves_no_request_and_no_object(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    stack: RunningServices,
    s3: Minio,
    bucket: str,
) -> None:
    before = await asyncio.to_thread(source_objects, s3, bucket)
    handled_before = await _upload_requests_handled(http, stack.urls["catalog"])
    sent_enough = asyncio.Event()

    async def cut_off() -> AsyncIterator[bytes]:
        # 20 MiB (more than two multipart parts), then the client vanishes.
        async for chunk in _zeros(20 * MiB):
            yield chunk
        sent_enough.set()
        await asyncio.Event().wait()  # never finishes; the request is cancelled

    boundary_writer = _multipart(cut_off())
    session = aiohttp.ClientSession()
    upload = asyncio.create_task(
        session.post(
            f"{gateway_url}/api/v1/users/videos",
            data=boundary_writer,
            headers={**account.auth, "Content-Length": str(GiB)},
        )
    )
    await asyncio.wait_for(sent_enough.wait(), 60)
    upload.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
        await upload
    await session.close()  # closes the connection midway through the body

    async def catalog_gave_up() -> bool:
        return await _upload_requests_handled(http, stack.urls["catalog"]) > handled_before

    await eventually(catalog_gave_up, within=30)
    async with http.get(f"{gateway_url}/api/v1/users/requests", headers=account.auth) as r:
        assert (await r.json(content_type=None))["data"] == []
    assert await asyncio.to_thread(source_objects, s3, bucket) == before


async def _upload_requests_handled(http: aiohttp.ClientSession, catalog_url: str) -> int:
    """POSTs to the trimming upload that catalog finished, whatever their status."""
    async with http.get(f"{catalog_url}/metrics") as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        labels = ('route="/api/v1/users/videos"', 'method="POST"')
        if line.startswith("http_requests_total{") and all(label in line for label in labels):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
