"""SIGTERM to a busy transcoder (Kubernetes scaling it down, a rolling update): it stops
taking messages, finishes the current job within its grace period, acks, and exits;
with too short a grace the job goes back to the queue for another worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from minio import Minio

from devstack.ports import free_port
from devstack.probes import http_ok
from devstack.processes import ManagedProcess, spawn, stop_all
from devstack.services import REPO_ROOT
from devstack.stores import StoreEndpoints
from shared.events import Envelope, TrimRequested
from tests.polling import eventually
from tests.transcoder.media_factory import make_clip


@dataclass
class Worker:
    process: ManagedProcess
    queue: str
    events: aio_pika.abc.AbstractQueue
    exchange: aio_pika.abc.AbstractExchange
    channel: aio_pika.abc.AbstractChannel


@pytest.fixture(scope="module")
def long_source(s3: Minio, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A source whose cut takes a few seconds (720p, 8 s re-encoded), in the session bucket."""
    path = tmp_path_factory.mktemp("shutdown") / "long.mp4"
    make_clip(path, seconds=10, size=(1280, 720))
    key = f"sources/shutdown-{uuid.uuid4().hex[:8]}"
    if not s3.bucket_exists(bucket):  # the services create it; this test needs none of them
        s3.make_bucket(bucket)
    s3.fput_object(bucket, key, str(path), content_type="video/mp4")
    return key


@contextlib.asynccontextmanager
async def _worker(
    service_env: dict[str, str],
    stores: StoreEndpoints,
    amqp_cleanup: list[str],
    tmp_path: Path,
    grace_seconds: float,
) -> AsyncIterator[Worker]:
    prefix = f"shutdown-{uuid.uuid4().hex[:8]}"
    exchange_name = f"kino.{prefix}"
    for name in ("jobs",):
        amqp_cleanup.extend(f"{prefix}.transcoder.{name}{s}" for s in ("", ".retry", ".dlq"))
    port = free_port()
    process = spawn(
        "transcoder",
        [sys.executable, "-m", "services.transcoder"],
        log_path=tmp_path / "transcoder.log",
        env={
            **os.environ,
            **service_env,
            "KINO_HTTP_HOST": "127.0.0.1",
            "KINO_HTTP_PORT": str(port),
            "KINO_AMQP_EXCHANGE": exchange_name,
            "KINO_AMQP_QUEUE_PREFIX": prefix,
            "KINO_SHUTDOWN_GRACE_SECONDS": str(grace_seconds),
        },
        cwd=REPO_ROOT,
    )
    try:

        async def ready() -> bool:
            try:
                await asyncio.to_thread(http_ok, f"http://127.0.0.1:{port}/ready")
            except Exception:
                return False
            return True

        await eventually(ready, within=60)
        connection = await aio_pika.connect(stores.amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(exchange_name)
            events = await channel.declare_queue(exclusive=True)
            for key in ("job.progressed", "trim.completed", "trim.failed"):
                await events.bind(exchange, routing_key=key)
            yield Worker(process, f"{prefix}.transcoder.jobs", events, exchange, channel)
            await channel.exchange_delete(exchange_name)
    finally:
        stop_all([process], grace=5)


async def _next_event(worker: Worker) -> dict[str, Any]:
    """The next event the worker published, passing over its progress reports."""

    async def message() -> aio_pika.abc.AbstractIncomingMessage | None:
        while (received := await worker.events.get(fail=False, no_ack=True)) is not None:
            if not _is_progress_report(json.loads(received.body)):
                return received
        return None

    received = await eventually(message, within=60)
    return dict(json.loads(received.body))


def _is_progress_report(event: dict[str, Any]) -> bool:
    return event["type"] == "job.progressed" and event["data"]["stage"] == "working"


async def _request_trim(worker: Worker, source_key: str) -> str:
    trim_id = uuid.uuid4().hex[:24]
    event = TrimRequested(
        trim_id=trim_id,
        video_id=uuid.uuid4().hex[:24],
        user_id="shutdown-test",
        source_key=source_key,
        start_seconds=1,
        duration_seconds=8,
    )
    await worker.exchange.publish(
        aio_pika.Message(
            Envelope.wrap(event, correlation_id=None).model_dump_json().encode(),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=event.event_type,
    )
    return trim_id


async def _exit_code(process: ManagedProcess) -> int:
    async def exited() -> bool:
        return process.has_exited()

    await eventually(exited, within=120)
    code = process.popen.returncode
    assert code is not None
    return code


async def _ready_messages(worker: Worker) -> int:
    queue = await worker.channel.declare_queue(worker.queue, passive=True)
    return int(queue.declaration_result.message_count or 0)


@pytest.fixture
def sigterm_during_a_job(
    service_env: dict[str, str],
    stores: StoreEndpoints,
    amqp_cleanup: list[str],
    tmp_path: Path,
    long_source: str,
) -> Callable[[float], contextlib.AbstractAsyncContextManager[tuple[Worker, str]]]:
    """A worker with `grace` seconds of shutdown grace, SIGTERMed once its job started."""

    @contextlib.asynccontextmanager
    async def run(grace: float) -> AsyncIterator[tuple[Worker, str]]:
        async with _worker(service_env, stores, amqp_cleanup, tmp_path, grace) as worker:
            trim_id = await _request_trim(worker, long_source)
            started = await _next_event(worker)
            assert (started["type"], started["data"]["id"]) == ("job.progressed", trim_id)
            worker.process.signal_group(signal.SIGTERM)
            yield worker, trim_id

    return run


async def test_sigterm_lets_the_current_job_finish(sigterm_during_a_job: Any) -> None:
    async with sigterm_during_a_job(120) as (worker, trim_id):
        finished = await _next_event(worker)
        assert finished["type"] == "trim.completed"
        assert finished["data"]["trim_id"] == trim_id
        assert await _exit_code(worker.process) == 0
        assert await _ready_messages(worker) == 0  # acked, not handed back


async def test_sigterm_with_a_short_grace_hands_the_job_back(sigterm_during_a_job: Any) -> None:
    async with sigterm_during_a_job(0.2) as (worker, _):
        await _exit_code(worker.process)

        async def handed_back() -> bool:
            return await _ready_messages(worker) == 1

        await eventually(handed_back, within=30)
        # No result was published for the abandoned attempt.
        while (left := await worker.events.get(fail=False, no_ack=True)) is not None:
            assert _is_progress_report(json.loads(left.body))
