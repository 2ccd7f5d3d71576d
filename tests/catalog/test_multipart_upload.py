"""Resumable uploads: an S3 multipart upload of the real store, driven through catalog's
hosting API, one presigned PUT per part.

The catalog runs in this process with no transcoder behind it (see conftest), so a
completed upload stays `processing` and its `video.uploaded` lands in a queue the test
reads. Files are bytes here: what is checked is the upload, not the media (the e2e
test sends a real video through the gateway).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from minio import Minio
from pymongo import AsyncMongoClient

from devstack.stores import StoreEndpoints
from services.catalog.keys import RECONCILER
from tests.catalog.conftest import LoneCatalog, unprocessed
from tests.conftest import PART_SIZE, UPLOAD_LIMIT, send_upload_part

FILE = os.urandom(PART_SIZE + 123_457)


async def begin(
    http: aiohttp.ClientSession, catalog: LoneCatalog, size: int = len(FILE), **fields: Any
) -> aiohttp.ClientResponse:
    body = {"file_name": "big.mp4", "file_content_type": "video/mp4", "size": size, **fields}
    return await http.post(
        f"{catalog.url}/video/upload/multipart", json=body, headers=catalog.headers()
    )


async def begun(http: aiohttp.ClientSession, catalog: LoneCatalog) -> dict[str, Any]:
    async with await begin(http, catalog) as response:
        assert response.status == 201, await response.text()
        return dict(await response.json())


async def put_part(
    http: aiohttp.ClientSession, catalog: LoneCatalog, hash_id: str, number: int, data: bytes
) -> str:
    return await send_upload_part(http, catalog.url, catalog.headers(), hash_id, number, data)


async def state(http: aiohttp.ClientSession, catalog: LoneCatalog, hash_id: str) -> dict[str, Any]:
    async with http.get(
        f"{catalog.url}/video/upload/multipart/{hash_id}", headers=catalog.headers()
    ) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def complete(
    http: aiohttp.ClientSession,
    catalog: LoneCatalog,
    hash_id: str,
    etags: dict[int, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    body = {"parts": [{"part_number": n, "etag": e} for n, e in etags.items()]} if etags else None
    async with http.post(
        f"{catalog.url}/video/upload/multipart/{hash_id}/complete",
        json=body,
        headers=catalog.headers(),
    ) as response:
        return response.status, dict(await response.json())


def stored_bytes(s3: Minio, bucket: str, hash_id: str) -> bytes:
    stored = s3.get_object(bucket, f"incoming/{hash_id}")
    try:
        return bytes(stored.read())
    finally:
        stored.close()
        stored.release_conn()


def open_uploads(s3: Minio, bucket: str, hash_id: str) -> list[str]:
    listed = s3._list_multipart_uploads(bucket, prefix=f"incoming/{hash_id}")
    return [upload.upload_id or "" for upload in listed.uploads]


async def test_an_interrupted_upload_resumes_from_its_stored_parts_and_completes_once(
    http: aiohttp.ClientSession, catalog: LoneCatalog, s3: Minio, bucket: str
) -> None:
    upload = await begun(http, catalog)
    hash_id = upload["hash_id"]
    assert (upload["part_size"], upload["parts"], upload["size"]) == (PART_SIZE, 2, len(FILE))
    assert len(hash_id) == 11
    assert upload["upload_id"]

    # The client sends the first part, then loses its connection.
    await put_part(http, catalog, hash_id, 1, FILE[:PART_SIZE])
    status, error = await complete(http, catalog, hash_id)
    assert (status, error["detail"]) == (409, "Parts not uploaded yet: 2")
    [pending] = await unprocessed(http, catalog)
    assert (pending["hash_id"], pending["status"]) == (hash_id, "pending")

    # Resuming: it asks what storage holds and sends the rest.
    resumed = await state(http, catalog, hash_id)
    assert [(p["part_number"], p["size"]) for p in resumed["uploaded_parts"]] == [(1, PART_SIZE)]
    await put_part(http, catalog, hash_id, 2, FILE[PART_SIZE:])
    status, video = await complete(http, catalog, hash_id)
    assert (status, video["hash_id"], video["status"]) == (202, hash_id, "processing")

    assert stored_bytes(s3, bucket, hash_id) == FILE
    assert s3.stat_object(bucket, f"incoming/{hash_id}").content_type == "video/mp4"
    # Completing again (a retried request) is accepted and starts nothing twice.
    assert (await complete(http, catalog, hash_id))[0] == 202
    [event] = await catalog.uploaded_events()
    assert event["data"]["video_id"] == hash_id
    assert open_uploads(s3, bucket, hash_id) == []


async def test_a_part_of_the_wrong_size_is_refused_until_it_is_sent_again(
    http: aiohttp.ClientSession, catalog: LoneCatalog, s3: Minio, bucket: str
) -> None:
    hash_id = (await begun(http, catalog))["hash_id"]
    await put_part(http, catalog, hash_id, 1, FILE[: PART_SIZE - 1])
    await put_part(http, catalog, hash_id, 2, FILE[PART_SIZE:])
    status, error = await complete(http, catalog, hash_id)
    assert (status, error["detail"]) == (
        409,
        f"Part 1 is {PART_SIZE - 1} bytes; it must be {PART_SIZE} bytes",
    )
    await put_part(http, catalog, hash_id, 1, FILE[:PART_SIZE])
    assert (await complete(http, catalog, hash_id))[0] == 202
    assert len(await catalog.uploaded_events()) == 1
    assert stored_bytes(s3, bucket, hash_id) == FILE


async def test_the_etags_named_at_completion_say_which_copy_of_a_resent_part_is_joined(
    http: aiohttp.ClientSession, catalog: LoneCatalog, s3: Minio, bucket: str
) -> None:
    """A part sent again with other bytes of the same size: S3 keeps the last copy, but
    SeaweedFS lists both (stored in the same second), so the client's ETags decide."""
    hash_id = (await begun(http, catalog))["hash_id"]
    await put_part(http, catalog, hash_id, 1, bytes(PART_SIZE))  # damaged
    first = await put_part(http, catalog, hash_id, 1, FILE[:PART_SIZE])
    second = await put_part(http, catalog, hash_id, 2, FILE[PART_SIZE:])

    status, error = await complete(http, catalog, hash_id, {1: '"' + "0" * 32 + '"'})
    assert (status, error["detail"]) == (409, f"Part 1 with ETag {'0' * 32} is not stored")
    assert (await complete(http, catalog, hash_id, {1: first, 2: second}))[0] == 202
    assert stored_bytes(s3, bucket, hash_id) == FILE


@pytest.mark.parametrize(
    ("fields", "status", "detail"),
    [
        ({"size": UPLOAD_LIMIT + 1}, 413, f"The file exceeds the limit of {UPLOAD_LIMIT} bytes"),
        ({"file_content_type": "text/plain"}, 400, "file_content_type must be one of"),
        ({"file_name": "a/b.mp4"}, 400, "file_name must not contain path separators"),
        ({"size": 0}, 422, None),
    ],
)
async def test_limits_are_those_of_the_post_policy(
    http: aiohttp.ClientSession,
    catalog: LoneCatalog,
    fields: dict[str, Any],
    status: int,
    detail: str | None,
) -> None:
    async with await begin(http, catalog, **fields) as response:
        assert response.status == status
        body = await response.json()
    if detail is not None:
        assert body["detail"].startswith(detail)
    assert await unprocessed(http, catalog) == []


async def test_part_numbers_and_owners_are_checked(
    http: aiohttp.ClientSession, catalog: LoneCatalog
) -> None:
    hash_id = (await begun(http, catalog))["hash_id"]
    base = f"{catalog.url}/video/upload/multipart/{hash_id}"
    for path, status in (("/parts/3", 400), ("/parts/0", 422), ("/parts/one", 422)):
        async with http.get(base + path, headers=catalog.headers()) as response:
            assert response.status == status, path
    stranger = LoneCatalog(**{**vars(catalog), "user_id": "someone-else"})
    for method, path in (("GET", ""), ("GET", "/parts/1"), ("POST", "/complete"), ("DELETE", "")):
        async with http.request(method, base + path, headers=stranger.headers()) as response:
            assert response.status == 404, (method, path)
    assert len(await unprocessed(http, catalog)) == 1


async def test_aborting_drops_the_parts_and_the_video(
    http: aiohttp.ClientSession, catalog: LoneCatalog, s3: Minio, bucket: str
) -> None:
    hash_id = (await begun(http, catalog))["hash_id"]
    await put_part(http, catalog, hash_id, 1, FILE[:PART_SIZE])
    async with http.delete(
        f"{catalog.url}/video/upload/multipart/{hash_id}", headers=catalog.headers()
    ) as response:
        assert response.status == 204
    assert open_uploads(s3, bucket, hash_id) == []
    assert await unprocessed(http, catalog) == []
    assert (await complete(http, catalog, hash_id))[0] == 404


async def test_the_reconciler_aborts_uploads_no_pending_video_claims(
    http: aiohttp.ClientSession,
    catalog: LoneCatalog,
    s3: Minio,
    bucket: str,
    stores: StoreEndpoints,
) -> None:
    expired = (await begun(http, catalog))["hash_id"]
    in_progress = (await begun(http, catalog))["hash_id"]
    completed = (await begun(http, catalog))["hash_id"]
    await put_part(http, catalog, expired, 1, FILE[:PART_SIZE])
    await put_part(http, catalog, completed, 1, FILE[:PART_SIZE])
    await put_part(http, catalog, completed, 2, FILE[PART_SIZE:])
    assert (await complete(http, catalog, completed))[0] == 202
    # A stray upload of a key whose video no longer waits for one (a client that began
    # one behind Kino's back, or an abort that failed).
    s3._create_multipart_upload(bucket, f"incoming/{completed}", {})
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stores.mongo_url)
    try:
        # Arrange: the first upload's time ran out an hour ago.
        await client[catalog.settings.mongo_db]["videos"].update_one(
            {"_id": expired},
            {"$set": {"upload_expires_at": datetime.now(UTC) - timedelta(hours=1)}},
        )
    finally:
        await client.close()

    report = await catalog.app[RECONCILER].run_once()
    assert (report.expired, report.multipart_aborted) == (1, 1)
    assert open_uploads(s3, bucket, expired) == []
    assert open_uploads(s3, bucket, completed) == []
    assert len(open_uploads(s3, bucket, in_progress)) == 1
    left = {v["hash_id"]: v["status"] for v in await unprocessed(http, catalog)}
    assert left == {in_progress: "pending", completed: "processing"}
    async with http.get(
        f"{catalog.url}/video/upload/multipart/{expired}", headers=catalog.headers()
    ) as response:
        assert response.status == 404
