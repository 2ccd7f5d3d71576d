"""PUT and DELETE of `/video/my/{hash_id}`: validation and ownership (hosting API)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import Account, make_user, my_videos, request_upload


@pytest.fixture
async def owner(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    return await make_user(http, gateway_url)


@pytest.fixture
async def hash_id(http: aiohttp.ClientSession, gateway_url: str, owner: Account) -> str:
    """A video of `owner` (upload requested; its state does not matter for these checks)."""
    instructions = await request_upload(http, gateway_url, owner, file_name="draft.mp4")
    return str(instructions["signatures"]["key"]).removeprefix("incoming/")


async def _put(
    http: aiohttp.ClientSession, url: str, account: Account, body: Any
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    headers = {**account.auth, "Content-Type": "application/json"}
    async with http.put(url, headers=headers, **kwargs) as response:
        return response.status, await response.json() if response.status != 204 else None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x" * 201}, "title"),
        ({"title": ""}, "title"),
        ({"description": "x" * 5001}, "description"),
        ({"is_private": "yes"}, "is_private"),
        ({"is_private": 1}, "is_private"),
        (b"{not json", None),
        ([1, 2], None),
    ],
)
async def test_invalid_updates_are_422_and_change_nothing(
    http: aiohttp.ClientSession,
    gateway_url: str,
    owner: Account,
    hash_id: str,
    body: Any,
    field: str | None,
) -> None:
    status, response = await _put(http, f"{gateway_url}/video/my/{hash_id}", owner, body)
    assert status == 422
    locations = [item["loc"] for item in response["detail"]]
    assert all(loc[0] == "body" for loc in locations)
    if field is not None:
        assert ["body", field] in locations
    [video] = (await my_videos(http, gateway_url, owner))["unprocessed_videos"]
    assert video["file_name"] == "draft.mp4"


async def test_an_empty_update_of_ones_own_video_is_204(
    http: aiohttp.ClientSession, gateway_url: str, owner: Account, hash_id: str
) -> None:
    status, _ = await _put(http, f"{gateway_url}/video/my/{hash_id}", owner, {})
    assert status == 204


async def test_limits_themselves_are_accepted(
    http: aiohttp.ClientSession, gateway_url: str, owner: Account, hash_id: str
) -> None:
    body = {"title": "t" * 200, "description": "d" * 5000, "is_private": False, "size_in_bytes": 1}
    status, _ = await _put(http, f"{gateway_url}/video/my/{hash_id}", owner, body)
    assert status == 204


async def test_unknown_or_foreign_videos_are_404(
    http: aiohttp.ClientSession, gateway_url: str, owner: Account, hash_id: str
) -> None:
    stranger = await make_user(http, gateway_url)
    for account, target in ((owner, "no-such-video"), (stranger, hash_id)):
        status, body = await _put(
            http, f"{gateway_url}/video/my/{target}", account, {"title": "mine now"}
        )
        assert (status, body) == (404, {"detail": "Video not found"})
        status, body = await _put(http, f"{gateway_url}/video/my/{target}", account, {})
        assert (status, body) == (404, {"detail": "Video not found"})
        async with http.delete(f"{gateway_url}/video/my/{target}", headers=account.auth) as r:
            assert r.status == 404
            assert await r.json() == {"detail": "Video not found"}
    # The owner's video is untouched and can still be deleted by its owner.
    async with http.delete(f"{gateway_url}/video/my/{hash_id}", headers=owner.auth) as r:
        assert r.status == 204
    assert await my_videos(http, gateway_url, owner) == {"unprocessed_videos": [], "videos": []}


async def test_owner_actions_need_a_token(
    http: aiohttp.ClientSession, gateway_url: str, hash_id: str
) -> None:
    async with http.put(f"{gateway_url}/video/my/{hash_id}", json={"title": "x"}) as r:
        assert r.status == 401
    async with http.delete(f"{gateway_url}/video/my/{hash_id}") as r:
        assert r.status == 401
        assert await r.json() == {"detail": "Not authenticated"}
