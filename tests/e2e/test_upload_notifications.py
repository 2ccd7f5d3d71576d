"""Through the whole stack on the embedded SeaweedFS: catalog picks an upload up (its
processing starts) from the notification `devstack.seaweedfs_events` publishes, well
within a second, not from its reconciler. What processing then makes of it is
`test_hosting_pipeline.py`'s subject.

The stack here is the session's stack with the reconciler's interval set to an hour
(on a database, exchanges, queues and a bucket of its own), so only the notification
can move the upload from pending to processing during the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from minio import Minio

from devstack.mongo_server import run_secantusdb
from devstack.ports import free_port
from devstack.s3_server import embedded_filer
from devstack.seaweedfs_events import PROCESS_NAME
from devstack.services import RunningServices, start_services
from devstack.stores import StoreEndpoints
from tests.conftest import (
    events_handled,
    make_user,
    my_videos,
    request_upload,
    upload_to_storage,
)
from tests.polling import eventually
from tests.stack_cleanup import declared_queues, delete_exchanges, remove_bucket
from tests.transcoder.media_factory import make_clip

#: Catalog must have picked the upload up this soon after storage answered the POST.
PICKED_UP_WITHIN_SECONDS = 2.0


@pytest.fixture(scope="module")
async def quiet_reconciler(
    service_env: dict[str, str],
    run_dir: Path,
    stores: StoreEndpoints,
    amqp_cleanup: list[str],
    s3: Minio,
) -> AsyncIterator[tuple[RunningServices, str]]:
    """The stack with its reconciler idle for an hour, and its queue prefix."""
    if embedded_filer(stores.s3_endpoint) is None:
        pytest.skip("the session's S3 store is not an embedded SeaweedFS (KINO_S3_ENDPOINT)")
    prefix = f"notify-{uuid.uuid4().hex[:8]}"
    env = {
        **service_env,
        "KINO_AMQP_EXCHANGE": f"kino.{prefix}",
        "KINO_AMQP_QUEUE_PREFIX": prefix,
        "KINO_STORAGE_EVENTS_EXCHANGE": f"kino.storage.{prefix}",
        "KINO_S3_BUCKET": f"kino-{prefix}",
        "KINO_UPLOAD_RECONCILE_INTERVAL_SECONDS": "3600",
    }
    amqp_cleanup.extend(declared_queues(prefix))
    with contextlib.ExitStack() as stop:
        # A database of its own: its catalog must not pick up the session's videos.
        mongo = await asyncio.to_thread(
            stop.enter_context,
            run_secantusdb(
                port=free_port(), storage=None, log_path=run_dir / prefix / "secantusdb.log"
            ),
        )
        env["KINO_MONGO_URL"] = mongo.url
        running = await asyncio.to_thread(stop.enter_context, start_services(env, run_dir / prefix))
        try:
            yield running, prefix
        finally:
            await asyncio.to_thread(stop.close)
            await delete_exchanges(
                stores.amqp_url, env["KINO_AMQP_EXCHANGE"], env["KINO_STORAGE_EVENTS_EXCHANGE"]
            )
            await asyncio.to_thread(remove_bucket, s3, env["KINO_S3_BUCKET"])


async def test_an_upload_is_picked_up_from_the_notification_not_the_listing(
    http: aiohttp.ClientSession,
    quiet_reconciler: tuple[RunningServices, str],
    tmp_path: Path,
) -> None:
    running, prefix = quiet_reconciler
    assert PROCESS_NAME in running.processes, "the bridge runs with the stack"
    account = await make_user(http, running.gateway_url)
    data = make_clip(tmp_path / "clip.mp4", seconds=2).read_bytes()
    instructions = await request_upload(http, running.gateway_url, account)
    hash_id = str(instructions["signatures"]["key"]).removeprefix("incoming/")

    stored = await upload_to_storage(http, instructions, data)
    assert stored.status == 204, await stored.text()
    answered = time.monotonic()

    async def picked_up() -> bool:
        mine = await my_videos(http, running.gateway_url, account)
        if any(video["hash_id"] == hash_id for video in mine["videos"]):
            return True
        [video] = [v for v in mine["unprocessed_videos"] if v["hash_id"] == hash_id]
        return bool(video["status"] != "pending")

    await eventually(picked_up, within=PICKED_UP_WITHIN_SECONDS, interval=0.01)
    assert time.monotonic() - answered < PICKED_UP_WITHIN_SECONDS

    async def handled_notifications() -> int:
        queue = f"{prefix}.catalog.storage-events"
        return await events_handled(http, running.urls["catalog"], queue)

    assert await eventually(handled_notifications) == 1
