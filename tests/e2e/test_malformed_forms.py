"""Forms a careless or hostile client sends get a 400 in the surface's style, never a
500, and a refused upload leaves nothing behind: no request, no stored source."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from minio import Minio

from tests.conftest import Account
from tests.e2e.test_trimming_api import JSONAPI, requests_of, source_objects
from tests.transcoder.media_factory import make_clip

BOUNDARY = "kino-test-boundary"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("forms") / "source.mp4"
    make_clip(path, seconds=1)
    return path.read_bytes()


def part(name: bytes, value: bytes, *, filename: bytes | None = None) -> bytes:
    disposition = b'form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    headers = b"Content-Disposition: " + disposition + b"\r\n"
    if filename is not None:
        headers += b"Content-Type: video/mp4\r\n"
    return b"--" + BOUNDARY.encode() + b"\r\n" + headers + b"\r\n" + value + b"\r\n"


def multipart(*parts: bytes, closed: bool = True) -> bytes:
    return b"".join(parts) + (b"--" + BOUNDARY.encode() + b"--\r\n" if closed else b"")


def trim_fields() -> list[bytes]:
    return [
        part(b"name", b"clip"),
        part(b"trimming_start_time", b"0"),
        part(b"duration", b"0.5"),
    ]


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        url, data=body, headers={"Content-Type": content_type, **(headers or {})}
    ) as response:
        assert response.content_type == JSONAPI
        return response.status, dict(await response.json(content_type=None))


@pytest.mark.parametrize("path", ["registration", "session", "videos"])
async def test_multipart_without_a_boundary_is_a_400(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, path: str
) -> None:
    status, body = await post(
        http,
        f"{gateway_url}/api/v1/users/{path}",
        b"email=a@b.org",
        content_type="multipart/form-data",
        headers=account.auth,
    )
    assert status == 400
    assert body["errors"][0]["detail"] == "A multipart form needs a boundary in its Content-Type"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            multipart(part(b"\xff\xfe", b"x"), *trim_fields()),
            "A field name is not UTF-8 text",
        ),
        (
            multipart(part(b"email", b"a@b.org"), part(b"email", b"c@d.org")),
            "Field 'email' is sent more than once",
        ),
        (multipart(part(b"email", b"\xff\xfe@b.org")), "Field 'email' is not text"),
        (multipart(part(b"email", b"a@b.org"), closed=False), "The multipart form is malformed"),
        (b"--other\r\n\r\nx\r\n--other--\r\n", "The multipart form is malformed"),
    ],
    ids=["non-utf8-name", "duplicate-field", "non-utf8-value", "unterminated", "wrong-boundary"],
)
@pytest.mark.parametrize("path", ["registration", "session"])
async def test_malformed_auth_forms_are_a_400(
    http: aiohttp.ClientSession, gateway_url: str, path: str, body: bytes, detail: str
) -> None:
    status, document = await post(http, f"{gateway_url}/api/v1/users/{path}", body)
    assert status == 400
    assert document["errors"][0]["detail"] == detail


async def test_urlencoded_form_that_is_not_utf8_is_a_400(
    http: aiohttp.ClientSession, gateway_url: str
) -> None:
    status, document = await post(
        http,
        f"{gateway_url}/api/v1/users/session",
        b"email=%FF%FE&password=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert status == 400
    assert document["errors"][0]["detail"] == "The form is not UTF-8 text"


def refused_uploads(clip: bytes) -> list[Any]:
    source = part(b"source_file", clip, filename=b"clip.mp4")
    return [
        pytest.param(
            multipart(source, *trim_fields(), part(b"note", b"n" * 5000)),
            "Field 'note' is longer than 4096 bytes",
            id="5000-byte-field-after-the-file",
        ),
        pytest.param(
            multipart(source, source, *trim_fields()),
            "Send exactly one source_file",
            id="two-source-files",
        ),
        pytest.param(
            multipart(source, part(b"\xff\xfe", b"x"), *trim_fields()),
            "A field name is not UTF-8 text",
            id="non-utf8-name-after-the-file",
        ),
        pytest.param(
            multipart(source, *trim_fields(), part(b"name", b"again")),
            "Field 'name' is sent more than once",
            id="duplicate-name",
        ),
        pytest.param(
            multipart(*trim_fields(), source, closed=False),
            "The multipart form is malformed",
            id="unterminated-after-the-file",
        ),
        pytest.param(
            multipart(*trim_fields(), part(b"poster", b"x", filename=b"p.jpg"), source),
            "Field 'poster' does not take a file",
            id="file-in-a-text-field",
        ),
    ]


@pytest.mark.parametrize("case", range(6))
async def test_refused_trim_uploads_are_a_400_and_leave_nothing_behind(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    clip: bytes,
    s3: Minio,
    bucket: str,
    case: int,
) -> None:
    param = refused_uploads(clip)[case]
    body, detail = param.values
    before = await asyncio.to_thread(source_objects, s3, bucket)
    status, document = await post(
        http, f"{gateway_url}/api/v1/users/videos", body, headers=account.auth
    )
    assert (status, document["errors"][0]["detail"]) == (400, detail), param.id
    assert await requests_of(http, gateway_url, account) == []
    assert await asyncio.to_thread(source_objects, s3, bucket) == before
