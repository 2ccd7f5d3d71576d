"""`POST /video/my/{hash_id}/retry`: a failed upload goes back to processing as a new
attempt, from the file it kept; results of the earlier attempt change nothing; the
file is removed once its retention runs out, and a retry then says why it cannot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from devstack.stores import StoreEndpoints
from services.catalog.keys import RECONCILER
from shared.events import FailureCode, VideoFailed, VideoProcessed
from shared.identity import IDENTITY_HEADER, Identity, IdentitySigner
from tests.catalog.conftest import LoneCatalog, unprocessed, upload
from tests.polling import eventually


async def _failed_upload(http: aiohttp.ClientSession, catalog: LoneCatalog) -> str:
    """An upload that arrived and that the transcoder failed (attempt 1)."""
    hash_id = (await upload(http, catalog)).removeprefix("incoming/")
    await catalog.app[RECONCILER].run_once()
    [arrived] = await catalog.uploaded_events()
    assert arrived["data"]["attempt"] == 1
    await catalog.publish(
        VideoFailed(
            video_id=hash_id,
            failure_reason="storage was unavailable; try again later",
            failure_code=FailureCode.STORAGE_ERROR,
        )
    )

    async def failed() -> dict[str, Any] | None:
        [video] = await unprocessed(http, catalog)
        return video if video["status"] == "failed" else None

    video = await eventually(failed)
    assert video["failure_code"] == "storage_error"
    return hash_id


async def _retry(
    http: aiohttp.ClientSession, catalog: LoneCatalog, hash_id: str, user: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = catalog.headers()
    if user is not None:
        signer = IdentitySigner(catalog.settings.internal_secret.get_secret_value())
        headers = {IDENTITY_HEADER: signer.sign(Identity(user))}
    async with http.post(f"{catalog.url}/video/my/{hash_id}/retry", headers=headers) as r:
        return r.status, dict(await r.json())


async def test_a_failed_upload_is_retried_as_a_new_attempt(
    http: aiohttp.ClientSession, catalog: LoneCatalog
) -> None:
    hash_id = await _failed_upload(http, catalog)

    status, body = await _retry(http, catalog, hash_id)

    assert status == 202
    assert body["hash_id"] == hash_id
    assert body["status"] == "processing"
    assert "failure_reason" not in body
    assert "failure_code" not in body
    [uploaded] = await catalog.uploaded_events()
    assert uploaded["data"]["video_id"] == hash_id
    assert uploaded["data"]["attempt"] == 2

    # A late result of the first attempt changes nothing; the second attempt's does.
    late = {"video_id": hash_id, "duration_seconds": 2.0, "size_in_bytes": 10}
    late |= {"video_type": "video/mp4", "playback_key": "p", "thumbnail_key": "t"}
    await catalog.publish(VideoProcessed(**late, attempt=1))
    await catalog.publish(VideoProcessed(**late, attempt=2))

    async def listed() -> bool:
        async with http.get(f"{catalog.url}/video/my/", headers=catalog.headers()) as r:
            mine = await r.json()
        return [v["hash_id"] for v in mine["videos"]] == [hash_id]

    await eventually(listed)


async def test_retry_of_a_video_that_did_not_fail_is_409_and_of_others_404(
    http: aiohttp.ClientSession, catalog: LoneCatalog
) -> None:
    hash_id = await _failed_upload(http, catalog)
    assert (await _retry(http, catalog, hash_id))[0] == 202

    status, body = await _retry(http, catalog, hash_id)
    assert status == 409
    assert body == {"detail": "Only a failed video can be retried; this one is processing"}

    assert (await _retry(http, catalog, hash_id, user="someone-else-entirely"))[0] == 404
    assert (await _retry(http, catalog, "no-such-video"))[0] == 404
    assert len(await catalog.uploaded_events()) == 1


async def test_a_failed_uploads_file_goes_after_its_retention_and_retry_says_so(
    http: aiohttp.ClientSession, catalog: LoneCatalog, stores: StoreEndpoints
) -> None:
    hash_id = await _failed_upload(http, catalog)
    report = await catalog.app[RECONCILER].run_once()
    assert report.failed_sources_removed == 0  # kept: within its retention

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stores.mongo_url)
    try:
        # Arrange: it failed longer ago than the retention (7 days by default).
        await client[catalog.settings.mongo_db]["videos"].update_one(
            {"_id": hash_id}, {"$set": {"failed_at": datetime.now(UTC) - timedelta(days=8)}}
        )
    finally:
        await client.close()
    report = await catalog.app[RECONCILER].run_once()
    assert report.failed_sources_removed == 1

    status, body = await _retry(http, catalog, hash_id)
    assert status == 409
    assert "no longer stored" in body["detail"]
    [video] = await unprocessed(http, catalog)
    assert video["status"] == "failed"
