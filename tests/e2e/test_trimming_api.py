"""The trimming API end to end through the gateway (seed 004): validation, status,
restart, clips, and the seed's 401 and 404 documents."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from minio import Minio
from yarl import URL

from tests.conftest import Account, make_user
from tests.polling import eventually
from tests.transcoder.media_factory import make_clip

JSONAPI = "application/vnd.api+json"
SEED_401 = {"errors": [{"detail": "Not authorized", "source": {}}], "jsonapi": {"version": "1.0"}}
NOT_INCLUDED = {"meta": {"included": False}}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("trim") / "source.mp4"
    make_clip(path, seconds=3)
    return path.read_bytes()


def trim_form(
    data: bytes | None,
    *,
    name: str | None = "test video",
    start: str | None = "1",
    duration: str | None = "2",
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for field, value in (("name", name), ("trimming_start_time", start), ("duration", duration)):
        if value is not None:
            form.add_field(field, value)
    if data is not None:
        form.add_field("source_file", data, filename="short_video.mp4", content_type="video/mp4")
    return form


async def post_video(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, form: aiohttp.FormData
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"{gateway_url}/api/v1/users/videos", data=form, headers=account.auth
    ) as response:
        assert response.content_type == JSONAPI
        return response.status, dict(await response.json(content_type=None))


async def requests_of(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> list[dict[str, Any]]:
    async with http.get(f"{gateway_url}/api/v1/users/requests", headers=account.auth) as r:
        assert r.status == 200
        assert r.content_type == JSONAPI
        return list((await r.json(content_type=None))["data"])


async def wait_for_status(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, request_id: str, *statuses: str
) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        for item in await requests_of(http, gateway_url, account):
            if item["id"] == request_id and item["attributes"]["status"] in statuses:
                return item
        return None

    return await eventually(settled, within=60)


def source_objects(s3: Minio, bucket: str) -> set[str]:
    """The stored sources; SeaweedFS lists an emptied folder as `sources/`, not an object."""
    listed = s3.list_objects(bucket, prefix="sources/", recursive=True)
    return {str(o.object_name) for o in listed if not str(o.object_name).endswith("/")}


async def test_upload_schedules_a_request_and_lists_the_clip(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    clip: bytes,
    s3: Minio,
    bucket: str,
) -> None:
    status, body = await post_video(http, gateway_url, account, trim_form(clip))
    assert status == 201
    video_id = body["data"]["id"]
    stored = await asyncio.to_thread(source_objects, s3, bucket)
    assert f"sources/{video_id}" in stored
    assert body == {
        "data": {
            "id": video_id,
            "type": "videos",
            "attributes": {"name": "test video"},
            "relationships": {"user": NOT_INCLUDED, "request": NOT_INCLUDED},
        },
        "jsonapi": {"version": "1.0"},
    }
    [request] = await requests_of(http, gateway_url, account)
    assert request["type"] == "requests"
    assert request["attributes"]["status"] in {"scheduled", "processing", "done"}
    assert request["relationships"] == {"user": NOT_INCLUDED, "video": NOT_INCLUDED}
    done = await wait_for_status(http, gateway_url, account, request["id"], "done", "failed")
    assert done["attributes"] == {
        "status": "done",
        "progress": 1.0,
        "eta_seconds": 0.0,
        "dropped_packets": 0,
    }

    async with http.get(f"{gateway_url}/api/v1/users/videos", headers=account.auth) as r:
        assert r.status == 200
        assert r.content_type == JSONAPI
        listed = await r.json(content_type=None)
    [clip_resource] = listed["data"]
    assert clip_resource["id"] == video_id
    assert clip_resource["type"] == "videos"
    assert clip_resource["attributes"]["duration"] == "00:00:02"
    assert clip_resource["relationships"] == {"user": NOT_INCLUDED, "request": NOT_INCLUDED}
    async with http.get(clip_resource["attributes"]["url"]) as download:
        assert download.status == 200
        assert (await download.read())[4:8] == b"ftyp"


async def test_requests_are_listed_newest_first(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, clip: bytes
) -> None:
    ids = []
    for name in ("first", "second"):
        status, body = await post_video(http, gateway_url, account, trim_form(clip, name=name))
        assert status == 201
        ids.append(body["data"]["id"])
    listed = await requests_of(http, gateway_url, account)
    assert len(listed) == 2
    # The newest request comes first; both are distinct requests.
    assert listed[0]["id"] != listed[1]["id"]
    assert listed[0]["id"] > listed[1]["id"]  # ObjectIds grow with time


async def test_start_past_the_end_fails_and_restart_schedules_it_again(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, clip: bytes
) -> None:
    status, _ = await post_video(http, gateway_url, account, trim_form(clip, start="10"))
    assert status == 201
    [request] = await requests_of(http, gateway_url, account)
    failed = await wait_for_status(http, gateway_url, account, request["id"], "failed", "done")
    assert failed["attributes"] == {
        "status": "failed",
        "failure_reason": "start is beyond the end of the video",
        "failure_code": "start_beyond_end",
    }
    async with http.post(
        f"{gateway_url}/api/v1/users/requests/{request['id']}/restart", headers=account.auth
    ) as response:
        assert response.status == 200
        assert response.content_type == JSONAPI
        restarted = await response.json(content_type=None)
    assert restarted == {
        "data": {
            "id": request["id"],
            "type": "requests",
            "attributes": {"status": "scheduled"},
            "relationships": {"user": NOT_INCLUDED, "video": NOT_INCLUDED},
        },
        "jsonapi": {"version": "1.0"},
    }
    # It is processed again, and fails again for the same reason.
    again = await wait_for_status(http, gateway_url, account, request["id"], "failed")
    assert again["attributes"]["failure_reason"] == "start is beyond the end of the video"


async def test_restart_of_a_request_that_did_not_fail_is_422(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, clip: bytes
) -> None:
    status, _ = await post_video(http, gateway_url, account, trim_form(clip))
    assert status == 201
    [request] = await requests_of(http, gateway_url, account)
    await wait_for_status(http, gateway_url, account, request["id"], "done")
    async with http.post(
        f"{gateway_url}/api/v1/users/requests/{request['id']}/restart", headers=account.auth
    ) as response:
        assert response.status == 422
        body = await response.json(content_type=None)
    assert body["errors"][0]["source"] == {"pointer": "/data/attributes/status"}
    assert "only a failed request" in body["errors"][0]["detail"].lower()
    [unchanged] = await requests_of(http, gateway_url, account)
    assert unchanged["attributes"]["status"] == "done"


@pytest.mark.parametrize("target", ["foreign", "unknown", "malformed", "with a newline"])
async def test_restart_of_a_request_that_is_not_yours_is_the_seeds_404(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    clip: bytes,
    target: str,
) -> None:
    if target == "foreign":
        owner = await make_user(http, gateway_url)
        status, _ = await post_video(http, gateway_url, owner, trim_form(clip, start="10"))
        assert status == 201
        [request] = await requests_of(http, gateway_url, owner)
        await wait_for_status(http, gateway_url, owner, request["id"], "failed")
        request_id = request["id"]
    else:
        request_id = {
            "unknown": "5d39f6128d366978db32e803",
            "malformed": "not-an-id",
            "with a newline": "x%0A",  # reaches catalog like any other id
        }[target]
    url = URL(f"{gateway_url}/api/v1/users/requests/{request_id}/restart", encoded=True)
    async with http.post(url, headers=account.auth) as response:
        assert response.status == 404
        assert response.content_type == "text/html"


@pytest.mark.parametrize(
    ("form_options", "pointer", "detail"),
    [
        ({"data": None}, "/data/attributes/source_file", "Source file can't be blank"),
        ({"data": b""}, "/data/attributes/source_file", "Source file can't be blank"),
        (
            {"start": None},
            "/data/attributes/trimming_start_time",
            "Trimming start time can't be blank",
        ),
        (
            {"start": "abc"},
            "/data/attributes/trimming_start_time",
            "Trimming start time must be a number",
        ),
        (
            {"start": "nan"},
            "/data/attributes/trimming_start_time",
            "Trimming start time must be a number",
        ),
        (
            {"start": "-1"},
            "/data/attributes/trimming_start_time",
            "Trimming start time must be greater than or equal to 0",
        ),
        ({"duration": None}, "/data/attributes/duration", "Duration can't be blank"),
        ({"duration": "0"}, "/data/attributes/duration", "Duration must be greater than 0"),
        ({"duration": "-2.5"}, "/data/attributes/duration", "Duration must be greater than 0"),
        ({"duration": "x"}, "/data/attributes/duration", "Duration must be a number"),
        (
            {"duration": "1e-300"},
            "/data/attributes/duration",
            "Duration must be at least 0.001 seconds",
        ),
        (
            {"duration": "4.8e16"},
            "/data/attributes/duration",
            "Duration must be less than or equal to 604800",
        ),
        (
            {"start": "4.8e16"},
            "/data/attributes/trimming_start_time",
            "Trimming start time must be less than or equal to 604800",
        ),
        ({"name": ""}, "/data/attributes/name", "Name can't be blank"),
        ({"name": None}, "/data/attributes/name", "Name can't be blank"),
    ],
)
async def test_invalid_uploads_are_422_and_leave_nothing_behind(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    clip: bytes,
    s3: Minio,
    bucket: str,
    form_options: dict[str, Any],
    pointer: str,
    detail: str,
) -> None:
    before = await asyncio.to_thread(source_objects, s3, bucket)
    options = dict(form_options)
    data = options.pop("data", clip)
    status, body = await post_video(http, gateway_url, account, trim_form(data, **options))
    assert status == 422
    assert {"detail": detail, "source": {"pointer": pointer}} in body["errors"]
    assert body["jsonapi"] == {"version": "1.0"}
    assert await requests_of(http, gateway_url, account) == []
    assert await asyncio.to_thread(source_objects, s3, bucket) == before


async def test_decimal_times_are_accepted(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, clip: bytes
) -> None:
    status, _ = await post_video(
        http, gateway_url, account, trim_form(clip, start="0.52", duration="1.5")
    )
    assert status == 201


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/users/videos"),
        ("POST", "/api/v1/users/videos"),
        ("GET", "/api/v1/users/requests"),
        ("POST", "/api/v1/users/requests/5d39f6118d366978db32e7ef/restart"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "token", "Bearer not.a.token"])
async def test_every_trimming_endpoint_needs_a_valid_token(
    http: aiohttp.ClientSession,
    gateway_url: str,
    method: str,
    path: str,
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with http.request(method, gateway_url + path, headers=headers) as response:
        assert response.status == 401
        assert response.content_type == JSONAPI
        assert await response.json(content_type=None) == SEED_401
