"""Upload configuration and presigned upload instructions (hosting API)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import (
    UPLOAD_LIMIT,
    Account,
    make_user,
    request_upload,
    upload_to_storage,
)


@pytest.fixture
async def account(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    return await make_user(http, gateway_url)


async def test_upload_config(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> None:
    async with http.get(f"{gateway_url}/video/upload/config") as response:
        assert response.status == 401
        assert await response.json() == {"detail": "Not authenticated"}
    async with http.get(f"{gateway_url}/video/upload/config", headers=account.auth) as response:
        assert response.status == 200
        body = await response.json()
    assert body["max_size_in_bytes"] == UPLOAD_LIMIT
    assert "video/mp4" in body["valid_file_types"]
    assert "video/webm" in body["valid_file_types"]


async def test_instructions_pin_key_type_and_size(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> None:
    instructions = await request_upload(http, gateway_url, account, file_name="my passwd.mp4")
    assert instructions["url"].startswith("http://127.0.0.1:")
    fields = instructions["signatures"]
    assert fields["key"].startswith("incoming/")
    assert "passwd" not in fields["key"]  # client text never becomes part of the key
    assert fields["Content-Type"] == "video/mp4"
    for name in ("policy", "x-amz-signature", "x-amz-credential", "x-amz-date", "x-amz-algorithm"):
        assert fields[name]

    accepted = await upload_to_storage(http, instructions, b"\x00" * 1024)
    assert accepted.status in {200, 201, 204}


async def test_storage_refuses_what_the_policy_does_not_allow(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> None:
    instructions = await request_upload(http, gateway_url, account)
    other_key = await upload_to_storage(
        http, instructions, b"data", field_overrides={"key": "incoming/someone-elses"}
    )
    assert other_key.status == 403
    other_type = await upload_to_storage(
        http,
        instructions,
        b"data",
        content_type="text/html",
        field_overrides={"Content-Type": "text/html"},
    )
    assert other_type.status == 403
    too_big = await upload_to_storage(http, instructions, b"\x00" * (UPLOAD_LIMIT + 1))
    assert too_big.status == 400


async def test_missing_parameters_are_422(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> None:
    async with http.get(f"{gateway_url}/video/upload/", headers=account.auth) as response:
        assert response.status == 422
        body = await response.json()
    assert {tuple(item["loc"]) for item in body["detail"]} == {
        ("query", "file_content_type"),
        ("query", "file_name"),
    }
    assert {item["type"] for item in body["detail"]} == {"missing"}


@pytest.mark.parametrize(
    ("content_type", "file_name", "reason"),
    [
        ("text/html", "a.mp4", "file_content_type must be one of"),
        ("video/mp4", "   ", "file_name must not be empty"),
        ("video/mp4", "x" * 256, "file_name must be at most 255 bytes"),
        ("video/mp4", "é" * 128, "file_name must be at most 255 bytes"),
        ("video/mp4", "a/b.mp4", "path separators"),
        ("video/mp4", "a\\b.mp4", "path separators"),
        ("video/mp4", "a\nb.mp4", "control characters"),
    ],
)
async def test_unusable_type_or_name_is_400(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    content_type: str,
    file_name: str,
    reason: str,
) -> None:
    async with http.get(
        f"{gateway_url}/video/upload/",
        params={"file_content_type": content_type, "file_name": file_name},
        headers=account.auth,
    ) as response:
        assert response.status == 400
        assert reason in (await response.json())["detail"]
    async with http.get(f"{gateway_url}/video/my/", headers=account.auth) as response:
        assert (await response.json()) == {"unprocessed_videos": [], "videos": []}


async def test_instructions_need_a_token(http: aiohttp.ClientSession, gateway_url: str) -> None:
    async with http.get(
        f"{gateway_url}/video/upload/",
        params={"file_content_type": "video/mp4", "file_name": "a.mp4"},
    ) as response:
        assert response.status == 401
        assert await response.json() == {"detail": "Not authenticated"}
