"""Live events end to end: the owner's Server-Sent Events stream through the gateway,
fed by the real results and progress of the stack, replayed after a reconnection."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from devstack.services import RunningServices
from services.gateway.app import create_app as create_gateway_app
from services.gateway.settings import GatewaySettings
from tests.conftest import Account, make_user, serve, upload_video
from tests.e2e.test_trimming_api import post_video, requests_of, trim_form, wait_for_status
from tests.transcoder.media_factory import make_clip

EVENTS = "/api/v1/users/events"


@dataclass(frozen=True)
class Message:
    id: int
    event: str
    data: dict[str, Any]


@dataclass
class Stream:
    """An open event stream, read message by message."""

    response: aiohttp.ClientResponse
    messages: list[Message] = field(default_factory=list)
    heartbeats: int = 0

    async def next(self, within: float) -> Message | None:
        """The next message; None for a heartbeat."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(within):
            while True:
                raw = await self.response.content.readline()
                assert raw, "the stream ended"
                line = raw.decode().rstrip("\n")
                if line == ": keep-alive":
                    self.heartbeats += 1
                    return None
                if line.startswith(":"):
                    continue
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                elif fields:
                    message = Message(
                        int(fields["id"]), fields["event"], json.loads(fields["data"])
                    )
                    self.messages.append(message)
                    return message

    async def until(self, wanted: Callable[[Message], bool], within: float = 45) -> Message:
        deadline = time.monotonic() + within
        while True:
            message = await self.next(deadline - time.monotonic())
            if message is not None and wanted(message):
                return message

    async def heartbeats_for(self, seconds: float) -> None:
        """Read everything that comes for `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                await self.next(left)
            except TimeoutError:
                return


async def open_stream(
    http: aiohttp.ClientSession,
    base_url: str,
    account: Account,
    *,
    last_event_id: int | None = None,
    query: dict[str, str] | None = None,
) -> Stream:
    headers = dict(account.auth)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    response = await http.get(f"{base_url}{EVENTS}", headers=headers, params=query)
    assert response.status == 200, await response.text()
    return Stream(response)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("live-events") / "source.mp4"
    make_clip(path, seconds=2, size=(320, 240))
    return path.read_bytes()


def ascending(messages: list[Message]) -> bool:
    ids = [m.id for m in messages]
    return ids == sorted(set(ids))


async def test_the_owner_hears_progress_and_results_live_and_replays_what_was_missed(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, clip: bytes
) -> None:
    other = await make_user(http, gateway_url)
    mine = await open_stream(http, gateway_url, account)
    theirs = await open_stream(http, gateway_url, other)
    assert mine.response.content_type == "text/event-stream"
    assert mine.response.headers["Cache-Control"] == "no-cache"
    assert mine.response.headers["X-Accel-Buffering"] == "no"

    hash_id = await upload_video(http, gateway_url, account, clip)
    ready = await mine.until(lambda m: m.event == "video.ready")
    assert ready.data["type"] == "video.ready"
    assert ready.data["data"]["hash_id"] == hash_id
    progress = [m for m in mine.messages if m.event == "job.progress"]
    assert progress, mine.messages
    assert {(m.data["data"]["job"], m.data["data"]["id"]) for m in progress} == {("video", hash_id)}
    assert all(0 <= m.data["data"]["fraction"] <= 1 for m in progress)
    assert ascending(mine.messages)
    mine.response.close()

    # Missed while disconnected: the trim's progress and result.
    status, created = await post_video(
        http, gateway_url, account, trim_form(clip, start="0.5", duration="1")
    )
    assert status == 201, created
    [request] = await requests_of(http, gateway_url, account)
    trim_id = request["id"]
    await wait_for_status(http, gateway_url, account, trim_id, "done")

    resumed = await open_stream(http, gateway_url, account, last_event_id=ready.id)
    done = await resumed.until(lambda m: m.event == "trim.done")
    assert done.data["data"]["id"] == trim_id
    assert done.data["data"]["attributes"]["status"] == "done"
    assert all(m.id > ready.id for m in resumed.messages)
    assert ascending(resumed.messages)
    assert {m.event for m in resumed.messages} <= {"job.progress", "trim.done"}
    assert any(
        m.event == "job.progress"
        and (m.data["data"]["job"], m.data["data"]["id"]) == ("trim", trim_id)
        for m in resumed.messages
    )
    resumed.response.close()

    # The query parameter (EventSource polyfills) replays the same way.
    first = mine.messages[0]
    polyfill = await open_stream(
        http, gateway_url, account, query={"last_event_id": str(first.id - 1)}
    )
    assert (await polyfill.until(lambda m: True)).id == first.id
    polyfill.response.close()

    # The other user's stream, open all along, heard none of it: only heartbeats.
    await theirs.heartbeats_for(1.5)
    assert theirs.messages == []
    assert theirs.heartbeats >= 2
    theirs.response.close()


async def test_a_new_stream_starts_from_now(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, clip: bytes
) -> None:
    hash_id = await upload_video(http, gateway_url, account, clip)
    first = await open_stream(http, gateway_url, account)
    await first.until(lambda m: m.event == "video.ready" and m.data["data"]["hash_id"] == hash_id)
    first.response.close()
    later = await open_stream(http, gateway_url, account)
    await later.heartbeats_for(1.2)
    assert later.messages == []
    assert later.heartbeats >= 1
    later.response.close()


async def test_the_stream_needs_a_token(http: aiohttp.ClientSession, gateway_url: str) -> None:
    async with http.get(f"{gateway_url}{EVENTS}") as response:
        assert response.status == 401


@pytest.fixture
async def impatient_gateway(
    make_settings: Callable[..., Any], stack: RunningServices
) -> AsyncIterator[str]:
    """A gateway whose upstream timeout (0.2 s) is shorter than the heartbeat (0.5 s)."""
    settings = make_settings(
        GatewaySettings,
        auth_url=stack.urls["auth"],
        catalog_url=stack.urls["catalog"],
        gateway_upstream_timeout_seconds=0.2,
    )
    async with serve(create_gateway_app(settings)) as url:
        yield url


async def test_a_stream_outlives_the_gateways_upstream_timeout(
    http: aiohttp.ClientSession, impatient_gateway: str, account: Account
) -> None:
    # Ordinary routes still answer 504 when silent longer than the timeout; the event
    # stream, silent 0.5 s between heartbeats, stays open.
    stream = await open_stream(http, impatient_gateway, account)
    await stream.heartbeats_for(2.0)
    assert stream.heartbeats >= 3
    stream.response.close()
