"""`kill -9` of a busy transcoder (a node lost, the OOM killer), through the gateway.

Every job it held goes back to its queue (quorum queues count the deliveries that
ended without an ack), so when the transcoder is started again each job ends done
exactly once. A job it dies on `KINO_JOB_DELIVERY_LIMIT` times is given up: it ends
`failed` with `worker_crashed`, and the jobs queued behind it still finish.

These tests kill transcoders, so they run a stack of their own (exchange, queue
prefix and bucket of their own; the databases are the session's, every record
belongs to a user made here) and restart its transcoder with the devstack's
`Supervisor`, as a container runtime would, with no delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from minio import Minio

from devstack.mongo_server import run_secantusdb
from devstack.ports import free_port
from devstack.services import RunningServices, start_services
from devstack.stores import StoreEndpoints
from devstack.supervisor import RestartPolicy, Supervisor, answers_ready
from tests.conftest import Account, make_user, my_videos, upload_video
from tests.e2e.test_trimming_api import post_video, requests_of, trim_form
from tests.polling import eventually
from tests.stack_cleanup import declared_queues, delete_exchanges, remove_bucket
from tests.transcoder.media_factory import make_clip

#: Small, so that case 2 reaches it with two kills.
DELIVERY_LIMIT = 2
#: Every event a job causes: its progress and its result.
JOB_EVENTS = ("job.progressed", "video.processed", "video.failed", "trim.completed", "trim.failed")
RESULTS = {"video.processed", "video.failed", "trim.completed", "trim.failed"}
WITHIN = 60.0


@dataclass
class CrashStack:
    """The four services of these tests, and what restarts their transcoder."""

    running: RunningServices
    supervisor: Supervisor
    exchange: str
    prefix: str
    bucket: str

    def job_queue(self, name: str) -> str:
        return f"{self.prefix}.transcoder.{name}"

    async def kill_transcoder(self) -> None:
        """SIGKILL the transcoder's process group and wait until it is gone."""
        process = self.running.processes["transcoder"]
        process.signal_group(signal.SIGKILL)

        async def gone() -> bool:
            return process.has_exited()

        await eventually(gone, within=10)

    async def restart_transcoder(self) -> float:
        """Start it again as the supervisor does (same command, environment, port and
        log); returns when that was, once it answers `/ready`."""
        before = self.running.processes["transcoder"]
        await asyncio.to_thread(self.supervisor.check)
        restarted_at = time.monotonic()
        assert self.running.processes["transcoder"] is not before, "not restarted"
        url = self.running.launches["transcoder"].url

        async def ready() -> bool:
            return await asyncio.to_thread(answers_ready, url)

        await eventually(ready, within=WITHIN, interval=0.1)
        return restarted_at


@pytest.fixture(scope="module")
async def crash_stack(
    service_env: dict[str, str],
    run_dir: Path,
    stores: StoreEndpoints,
    amqp_cleanup: list[str],
    s3: Minio,
) -> AsyncIterator[CrashStack]:
    prefix = f"crash-{uuid.uuid4().hex[:8]}"
    env = {
        **service_env,
        "KINO_AMQP_EXCHANGE": f"kino.{prefix}",
        "KINO_AMQP_QUEUE_PREFIX": prefix,
        "KINO_STORAGE_EVENTS_EXCHANGE": f"kino.storage.{prefix}",
        "KINO_S3_BUCKET": f"kino-{prefix}",
        "KINO_JOB_DELIVERY_LIMIT": str(DELIVERY_LIMIT),
    }
    amqp_cleanup.extend(declared_queues(prefix))
    with contextlib.ExitStack() as stop:
        # A database of its own: catalogs sharing one would share their held jobs (fair
        # share) across exchanges and buckets that are not shared.
        mongo = await asyncio.to_thread(
            stop.enter_context,
            run_secantusdb(
                port=free_port(), storage=None, log_path=run_dir / prefix / "secantusdb.log"
            ),
        )
        env["KINO_MONGO_URL"] = mongo.url
        services = start_services(env, run_dir / prefix)
        running = await asyncio.to_thread(stop.enter_context, services)
        # Only the transcoder is restarted: any other service dying is a failure to see.
        transcoder_only = RunningServices(
            running.urls, running.processes, {"transcoder": running.launches["transcoder"]}
        )
        supervisor = Supervisor(transcoder_only, RestartPolicy(first_delay=0.0))
        try:
            yield CrashStack(
                running, supervisor, env["KINO_AMQP_EXCHANGE"], prefix, env["KINO_S3_BUCKET"]
            )
        finally:
            await asyncio.to_thread(stop.close)  # stops the transcoder `processes` holds now
            await delete_exchanges(
                stores.amqp_url, env["KINO_AMQP_EXCHANGE"], env["KINO_STORAGE_EVENTS_EXCHANGE"]
            )
            await asyncio.to_thread(remove_bucket, s3, env["KINO_S3_BUCKET"])


@dataclass
class Seen:
    at: float
    type: str
    data: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.data.get("id") or self.data.get("trim_id") or self.data.get("video_id"))


@dataclass
class JobEvents:
    """What the stack's services published about jobs, as it arrives."""

    seen: list[Seen] = field(default_factory=list)

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        self.seen.append(Seen(time.monotonic(), body["type"], body["data"]))

    def starts(self, job_id: str) -> list[Seen]:
        """Each delivery a worker took the job on."""
        return [
            s
            for s in self.seen
            if s.type == "job.progressed" and s.data["stage"] == "started" and s.job_id == job_id
        ]

    def results(self, job_id: str) -> list[Seen]:
        return [s for s in self.seen if s.type in RESULTS and s.job_id == job_id]

    def in_flight(self, job_ids: Iterable[str]) -> set[str]:
        """Jobs a worker has taken and published no result for."""
        return {j for j in job_ids if self.starts(j) and not self.results(j)}

    def finished(self, job_ids: Iterable[str]) -> set[str]:
        return {j for j in job_ids if self.results(j)}


@pytest.fixture
async def job_events(crash_stack: CrashStack, stores: StoreEndpoints) -> AsyncIterator[JobEvents]:
    events = JobEvents()
    connection = await aio_pika.connect(stores.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        for key in JOB_EVENTS:
            await queue.bind(crash_stack.exchange, routing_key=key)
        await queue.consume(events.on_message, no_ack=True)
        yield events


@pytest.fixture
async def account(http: aiohttp.ClientSession, crash_stack: CrashStack) -> Account:
    return await make_user(http, crash_stack.running.gateway_url)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """MPEG-4 Part 2, so hosting transcodes it (no remux): about half a second of work."""
    path = tmp_path_factory.mktemp("crash") / "short.mp4"
    return make_clip(path, seconds=5, video_codec="mpeg4").read_bytes()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A source whose cut or transcode takes seconds: a kill lands in the middle of it."""
    path = tmp_path_factory.mktemp("crash") / "long.mp4"
    return make_clip(path, seconds=12, size=(640, 360), video_codec="mpeg4").read_bytes()


async def post_trim(
    http: aiohttp.ClientSession, stack: CrashStack, account: Account, source: bytes, duration: str
) -> str:
    """Request a trim; returns the id of its request."""
    before = {r["id"] for r in await requests_of(http, stack.running.gateway_url, account)}
    form = trim_form(source, start="0.5", duration=duration)
    status, body = await post_video(http, stack.running.gateway_url, account, form)
    assert status == 201, body
    after = {r["id"] for r in await requests_of(http, stack.running.gateway_url, account)}
    [request_id] = after - before
    return str(request_id)


async def trim_states(
    http: aiohttp.ClientSession, stack: CrashStack, account: Account
) -> dict[str, dict[str, Any]]:
    """Each trim request's attributes, by request id."""
    return {
        r["id"]: r["attributes"]
        for r in await requests_of(http, stack.running.gateway_url, account)
    }


async def video_states(
    http: aiohttp.ClientSession, stack: CrashStack, account: Account
) -> dict[str, list[str]]:
    """Where each hosting video shows in `/video/my/`: "listed" or its status, once per
    time it shows (so a video listed twice shows as ["listed", "listed"])."""
    mine = await my_videos(http, stack.running.gateway_url, account)
    states: dict[str, list[str]] = {}
    for video in mine["videos"]:
        states.setdefault(video["hash_id"], []).append("listed")
    for video in mine["unprocessed_videos"]:
        states.setdefault(video["hash_id"], []).append(video["status"])
    return states


async def ready_messages(stores: StoreEndpoints, queue: str) -> int:
    connection = await aio_pika.connect(stores.amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def dead_letters(stores: StoreEndpoints, stack: CrashStack) -> int:
    """What the job queue's DLQ holds."""
    return await ready_messages(stores, f"{stack.job_queue('jobs')}.dlq")


def objects(s3: Minio, bucket: str, prefix: str) -> list[str]:
    """The objects under `prefix`, sorted (SeaweedFS lists an emptied folder as one)."""
    listed = (str(o.object_name) for o in s3.list_objects(bucket, prefix=prefix, recursive=True))
    return sorted(name for name in listed if not name.endswith("/"))


async def test_jobs_a_killed_transcoder_held_end_done_once_after_its_restart(
    http: aiohttp.ClientSession,
    crash_stack: CrashStack,
    job_events: JobEvents,
    account: Account,
    short_clip: bytes,
    stores: StoreEndpoints,
    s3: Minio,
) -> None:
    gateway = crash_stack.running.gateway_url
    dead_before = await dead_letters(stores, crash_stack)
    videos = [
        await upload_video(http, gateway, account, short_clip, file_name=f"crash-{n}.mp4")
        for n in range(3)
    ]
    trims = [await post_trim(http, crash_stack, account, short_clip, "4") for _ in range(2)]
    jobs = [*videos, *trims]

    async def mid_work() -> bool:
        # Some job done and another taken: the kill lands in the middle of the queue.
        return bool(job_events.finished(jobs)) and bool(job_events.in_flight(jobs))

    await eventually(mid_work, within=WITHIN, interval=0.01)
    await crash_stack.kill_transcoder()
    killed_at = time.monotonic()
    results_out = job_events.finished(jobs)
    in_flight = job_events.in_flight(jobs)
    not_taken = set(jobs) - results_out - in_flight
    assert in_flight, "the transcoder was not working on a job when it was killed"

    restarted_at = await crash_stack.restart_transcoder()
    ready_at = time.monotonic()

    async def all_done() -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]] | None:
        hosted = await video_states(http, crash_stack, account)
        trimmed = await trim_states(http, crash_stack, account)
        settled = all(hosted.get(v) in (["listed"], ["failed"]) for v in videos) and all(
            trimmed[t]["status"] in {"done", "failed"} for t in trims
        )
        return (hosted, trimmed) if settled else None

    hosted, trimmed = await eventually(all_done, within=WITHIN)
    done_at = time.monotonic()

    assert {v: hosted[v] for v in videos} == {v: ["listed"] for v in videos}
    assert {t: trimmed[t] for t in trims} == {
        t: {"status": "done", "progress": 1.0, "eta_seconds": 0.0, "dropped_packets": 0}
        for t in trims
    }
    for video in videos:
        stored = await asyncio.to_thread(objects, s3, crash_stack.bucket, f"playback/{video}/")
        # 320x240: one rung, its file and its playlist, each made once.
        assert stored == [f"playback/{video}/240p.m3u8", f"playback/{video}/240p.mp4"]
    async with http.get(f"{gateway}/api/v1/users/videos", headers=account.auth) as response:
        assert response.status == 200
        clips = (await response.json(content_type=None))["data"]
    assert len(clips) == len(trims)
    assert len({c["id"] for c in clips}) == len(trims)
    for trim in trims:
        stored = await asyncio.to_thread(objects, s3, crash_stack.bucket, f"clips/{trim}")
        assert stored == [f"clips/{trim}.mp4"]
    # The ones in flight were taken again after the restart; nothing was given up.
    for job in in_flight:
        assert any(s.at > restarted_at for s in job_events.starts(job)), job
    assert await dead_letters(stores, crash_stack) == dead_before

    # A job whose result was out may still have been unacked: then it was done again.
    taken_again = {
        j for j in jobs if {s.at > restarted_at for s in job_events.starts(j)} == {True, False}
    }
    twice = [
        [r.type for r in job_events.results(j)] for j in jobs if len(job_events.results(j)) > 1
    ]
    print(
        f"\nkill -9 with {len(jobs)} jobs: {len(results_out)} had their result out, "
        f"{len(in_flight)} were taken, {len(not_taken)} queued; after the restart "
        f"{len(taken_again)} were taken again ({len(taken_again & results_out)} with a result "
        f"out; results published twice: {twice}); {len(jobs)}/{len(jobs)} "
        f"survived and show done once; dead {restarted_at - killed_at:.2f} s, restart to "
        f"ready {ready_at - restarted_at:.2f} s, restart to every job done "
        f"{done_at - restarted_at:.2f} s"
    )


async def test_a_job_its_worker_died_on_every_delivery_fails_and_the_queue_moves_on(
    http: aiohttp.ClientSession,
    crash_stack: CrashStack,
    job_events: JobEvents,
    account: Account,
    short_clip: bytes,
    long_clip: bytes,
    stores: StoreEndpoints,
) -> None:
    dead_before = await dead_letters(stores, crash_stack)
    fatal = await post_trim(http, crash_stack, account, long_clip, "11")
    behind = [await post_trim(http, crash_stack, account, short_clip, "4") for _ in range(2)]

    restarts = []
    for death in range(1, DELIVERY_LIMIT + 1):

        async def taken(deliveries: int = death) -> bool:
            return len(job_events.starts(fatal)) == deliveries

        await eventually(taken, within=WITHIN, interval=0.01)
        await crash_stack.kill_transcoder()
        assert not job_events.results(fatal), "the job ended before its worker was killed"
        restarts.append(await crash_stack.restart_transcoder())

    async def settled() -> dict[str, dict[str, Any]] | None:
        states = await trim_states(http, crash_stack, account)
        ended = all(states[r]["status"] in {"done", "failed"} for r in (fatal, *behind))
        return states if ended else None

    states = await eventually(settled, within=WITHIN)
    done_at = time.monotonic()

    assert states[fatal] == {
        "status": "failed",
        "failure_reason": "processing stopped unexpectedly, repeatedly",
        "failure_code": "worker_crashed",
    }
    assert {r: states[r] for r in behind} == {
        r: {"status": "done", "progress": 1.0, "eta_seconds": 0.0, "dropped_packets": 0}
        for r in behind
    }
    # The delivery past the limit was not run: the job was given up and dead-lettered.
    assert len(job_events.starts(fatal)) == DELIVERY_LIMIT
    [given_up] = job_events.results(fatal)
    assert (given_up.type, given_up.data["failure_code"]) == ("trim.failed", "worker_crashed")
    assert await dead_letters(stores, crash_stack) == dead_before + 1
    # The jobs behind it waited for it: each was taken only once it was given up.
    for request in behind:
        [start] = job_events.starts(request)
        assert start.at > given_up.at

    print(
        f"\nthe same job killed {DELIVERY_LIMIT} times (limit {DELIVERY_LIMIT}): it failed "
        f"worker_crashed {given_up.at - restarts[-1]:.2f} s after the last restart; "
        f"{len(behind)}/{len(behind)} jobs behind it done "
        f"{done_at - restarts[-1]:.2f} s after it"
    )


async def test_a_job_is_not_taken_while_another_runs(
    http: aiohttp.ClientSession,
    crash_stack: CrashStack,
    job_events: JobEvents,
    account: Account,
    short_clip: bytes,
    long_clip: bytes,
) -> None:
    """One media job at a time per process: a job that arrives while another runs stays
    in its queue, so a crash of that one costs it nothing."""
    gateway = crash_stack.running.gateway_url
    running = await upload_video(http, gateway, account, long_clip, file_name="long.mp4")

    async def taken() -> bool:
        return bool(job_events.starts(running))

    await eventually(taken, within=WITHIN, interval=0.01)
    arriving = await post_trim(http, crash_stack, account, short_clip, "4")

    async def both_ended() -> bool:
        return bool(job_events.results(running)) and bool(job_events.results(arriving))

    await eventually(both_ended, within=WITHIN)
    [first_done] = job_events.results(running)
    assert first_done.type == "video.processed"
    [arrived_taken] = job_events.starts(arriving)
    assert arrived_taken.at > first_done.at, (
        f"taken {first_done.at - arrived_taken.at:.2f} s before the running job ended"
    )
