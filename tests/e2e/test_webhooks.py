"""Webhooks end to end: endpoints through the gateway, real results of the stack
delivered to a receiver running in this process, signed per Standard Webhooks."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Account, make_user, serve, upload_video, wait_until_done
from tests.polling import eventually
from tests.transcoder.media_factory import make_clip

JSONAPI = "application/vnd.api+json"
WEBHOOKS = "/api/v1/users/webhooks"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """Records every POST per path; can fail the first N of a path or answer 410."""

    base_url: str = ""
    requests: dict[str, list[Received]] = field(default_factory=dict)
    fail_first: dict[str, int] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)

    def url(self, name: str) -> str:
        return f"{self.base_url}/hooks/{name}"

    def of(self, name: str) -> list[Received]:
        return self.requests.get(name, [])

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        received = self.requests.setdefault(name, [])
        received.append(Received(dict(request.headers), await request.read()))
        if name in self.gone:
            return web.Response(status=410)
        if len(received) <= self.fail_first.get(name, 0):
            return web.Response(status=500)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/{name}", receiver.handle)
    async with serve(app) as base_url:
        receiver.base_url = base_url
        yield receiver


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("webhooks") / "source.mp4"
    make_clip(path, seconds=2)
    return path.read_bytes()


def _readme_verifier() -> Callable[[str, Mapping[str, str], bytes], bool]:
    """The README's `verify_webhook` snippet, run as written: what integrators copy is
    what checks real deliveries here (it is written from the spec, not from the
    service's code)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    found = re.search(r"```python\n(.*?def verify_webhook.*?)```", readme, re.S)
    assert found is not None, "the README has no verify_webhook snippet"
    namespace: dict[str, Any] = {}
    exec(found[1], namespace)
    return cast(Callable[[str, Mapping[str, str], bytes], bool], namespace["verify_webhook"])


verify_webhook = _readme_verifier()


def verify(secret: str, received: Received) -> bool:
    return verify_webhook(secret, received.headers, received.body)


async def create(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    url: str,
    event_types: list[str] | None = None,
) -> tuple[int, dict[str, Any]]:
    attributes: dict[str, Any] = {"url": url}
    if event_types is not None:
        attributes["event_types"] = event_types
    document = {"data": {"type": "webhooks", "attributes": attributes}}
    async with http.post(
        f"{gateway_url}{WEBHOOKS}",
        data=json.dumps(document),
        headers={**account.auth, "Content-Type": JSONAPI},
    ) as response:
        assert response.content_type == JSONAPI
        return response.status, dict(await response.json(content_type=None))


async def create_ok(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    url: str,
    event_types: list[str] | None = None,
) -> dict[str, Any]:
    status, body = await create(http, gateway_url, account, url, event_types)
    assert status == 201, body
    return dict(body["data"])


async def listed(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> list[dict[str, Any]]:
    async with http.get(f"{gateway_url}{WEBHOOKS}", headers=account.auth) as response:
        assert response.status == 200
        return list((await response.json(content_type=None))["data"])


async def deliveries(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, webhook_id: str
) -> tuple[int, list[dict[str, Any]]]:
    url = f"{gateway_url}{WEBHOOKS}/{webhook_id}/deliveries"
    async with http.get(url, headers=account.auth) as response:
        if response.status != 200:
            return response.status, []
        return 200, list((await response.json(content_type=None))["data"])


async def listed_video(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, clip: bytes
) -> str:
    hash_id = await upload_video(http, gateway_url, account, clip)
    state, _ = await wait_until_done(http, gateway_url, account, hash_id)
    assert state == "listed"
    return hash_id


async def test_a_listed_video_is_posted_signed_to_its_owners_endpoints_only(
    http: aiohttp.ClientSession, gateway_url: str, receiver: Receiver, clip: bytes
) -> None:
    owner, stranger = await make_user(http, gateway_url), await make_user(http, gateway_url)
    created = await create_ok(http, gateway_url, owner, receiver.url("all"))
    secret = created["attributes"]["secret"]
    assert secret.startswith("whsec_")
    assert created["type"] == "webhooks"
    assert created["attributes"]["event_types"] == [
        "video.ready",
        "video.failed",
        "trim.done",
        "trim.failed",
    ]
    await create_ok(http, gateway_url, owner, receiver.url("trims-only"), ["trim.done"])
    await create_ok(http, gateway_url, stranger, receiver.url("stranger"))
    shown = await listed(http, gateway_url, owner)
    assert next(w["id"] for w in shown) == created["id"]
    assert len(shown) == 2
    assert all("secret" not in w["attributes"] for w in shown)

    hash_id = await listed_video(http, gateway_url, owner, clip)

    [received] = await eventually(lambda: _some(receiver.of("all")), within=15)
    assert verify(secret, received)
    assert received.headers["Content-Type"] == "application/json"
    payload = received.payload
    assert payload["type"] == "video.ready"
    assert payload["timestamp"].endswith("Z")
    assert payload["data"]["hash_id"] == hash_id
    assert payload["data"]["user_id"] == owner.id
    assert payload["data"]["listing_time"]

    async def settled() -> list[dict[str, Any]] | None:
        """The attempts once the worker recorded the answer (just after it came)."""
        _, attempts = await deliveries(http, gateway_url, owner, created["id"])
        pending = any(a["attributes"]["status"] == "pending" for a in attempts)
        return None if pending or not attempts else attempts

    attempts = await eventually(settled, within=5)
    assert [(a["attributes"]["status"], a["attributes"]["attempt"]) for a in attempts] == [
        ("succeeded", 1)
    ]
    assert attempts[0]["attributes"]["message_id"] == received.headers["webhook-id"]
    assert attempts[0]["attributes"]["response_code"] == 204
    # the filter and the other user: nothing (the owner's delivery is done, and both
    # were recorded in the same step)
    assert receiver.of("trims-only") == []
    assert receiver.of("stranger") == []


async def test_a_failing_receiver_is_retried_with_the_same_message_id_and_a_trim_is_posted(
    http: aiohttp.ClientSession, gateway_url: str, receiver: Receiver, clip: bytes
) -> None:
    account = await make_user(http, gateway_url)
    receiver.fail_first["flaky"] = 2
    webhook = await create_ok(http, gateway_url, account, receiver.url("flaky"), ["trim.done"])
    form = aiohttp.FormData()
    for name, value in (("name", "cut"), ("trimming_start_time", "0.5"), ("duration", "1")):
        form.add_field(name, value)
    form.add_field("source_file", clip, filename="source.mp4", content_type="video/mp4")
    async with http.post(
        f"{gateway_url}/api/v1/users/videos", data=form, headers=account.auth
    ) as response:
        assert response.status == 201, await response.text()

    received = await eventually(lambda: _at_least(receiver.of("flaky"), 3), within=60)
    assert len({r.headers["webhook-id"] for r in received}) == 1
    assert all(verify(webhook["attributes"]["secret"], r) for r in received)
    payload = received[-1].payload
    assert payload["type"] == "trim.done"
    assert payload["data"]["type"] == "requests"
    assert payload["data"]["attributes"]["status"] == "done"

    async def three_attempts() -> list[dict[str, Any]] | None:
        _, attempts = await deliveries(http, gateway_url, account, webhook["id"])
        settled = all(a["attributes"]["status"] != "pending" for a in attempts)
        return attempts if len(attempts) == 3 and settled else None

    attempts = await eventually(three_attempts, within=10)
    summary = [
        (a["attributes"]["attempt"], a["attributes"]["status"], a["attributes"]["response_code"])
        for a in attempts
    ]
    assert summary == [(3, "succeeded", 204), (2, "failed", 500), (1, "failed", 500)]
    assert {a["attributes"]["event_type"] for a in attempts} == {"trim.done"}


async def test_gone_disables_and_delete_stops_deliveries(
    http: aiohttp.ClientSession, gateway_url: str, receiver: Receiver, clip: bytes
) -> None:
    account, other = await make_user(http, gateway_url), await make_user(http, gateway_url)
    receiver.gone.add("gone")
    gone = await create_ok(http, gateway_url, account, receiver.url("gone"), ["video.ready"])
    deleted = await create_ok(http, gateway_url, account, receiver.url("deleted"))
    await create_ok(http, gateway_url, account, receiver.url("control"))

    await listed_video(http, gateway_url, account, clip)
    await eventually(lambda: _at_least(receiver.of("deleted"), 1), within=15)
    await eventually(lambda: _at_least(receiver.of("control"), 1), within=15)
    await eventually(lambda: _at_least(receiver.of("gone"), 1), within=15)

    async def disabled() -> bool:
        return any(
            w["id"] == gone["id"] and not w["attributes"]["enabled"]
            for w in await listed(http, gateway_url, account)
        )

    await eventually(disabled, within=10)

    # another user's id is unknown to this one; then the owner deletes it
    url = f"{gateway_url}{WEBHOOKS}/{deleted['id']}"
    async with http.delete(url, headers=other.auth) as response:
        assert response.status == 404
    async with http.delete(url, headers=account.auth) as response:
        assert response.status == 204
    async with http.delete(url, headers=account.auth) as response:
        assert response.status == 404
    assert (await deliveries(http, gateway_url, account, deleted["id"]))[0] == 404
    assert (await deliveries(http, gateway_url, other, gone["id"]))[0] == 404

    await listed_video(http, gateway_url, account, clip)
    await eventually(lambda: _at_least(receiver.of("control"), 2), within=15)
    assert len(receiver.of("gone")) == 1
    assert len(receiver.of("deleted")) == 1
    _, attempts = await deliveries(http, gateway_url, account, gone["id"])
    assert [(a["attributes"]["status"], a["attributes"]["response_code"]) for a in attempts] == [
        ("failed", 410)
    ]


async def test_creation_refuses_what_cannot_be_delivered(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> None:
    for url in ("ftp://example.org/hook", "not a url", "", "http://"):
        status, body = await create(http, gateway_url, account, url)
        assert status == 422, (url, body)
        assert body["errors"][0]["source"]["pointer"] == "/data/attributes/url"
    status, body = await create(
        http, gateway_url, account, "https://example.org/h", ["video.ready", "video.exploded"]
    )
    assert status == 422
    assert body["errors"][0]["source"]["pointer"] == "/data/attributes/event_types/1"
    # a form works too (event types comma-separated)
    async with http.post(
        f"{gateway_url}{WEBHOOKS}",
        data={"url": "https://example.org/form", "event_types": "trim.done, trim.failed"},
        headers=account.auth,
    ) as response:
        assert response.status == 201
        created = (await response.json(content_type=None))["data"]
    assert created["attributes"]["event_types"] == ["trim.done", "trim.failed"]
    async with http.get(f"{gateway_url}{WEBHOOKS}") as response:
        assert response.status == 401


async def _some(items: list[Received]) -> list[Received] | None:
    return list(items) if items else None


async def _at_least(items: list[Received], count: int) -> list[Received] | None:
    return list(items) if len(items) >= count else None
