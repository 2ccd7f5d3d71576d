"""Broker outages under load, through the whole stack: a private RabbitMQ node stopped
for 20 s (`rabbitmqctl stop_app`) and started again, and killed with -9 and started
again, while hosting uploads and trims are being processed.

After each fault every service's consumers come back by themselves (`/ready` is 503
while one is missing, 200 again after), every job submitted before the fault ends
once (listed once with one playback object, or its trim `done`), and jobs submitted
while the broker is down are accepted (their events wait in the outbox) and end
after it returns.

The stack is its own: the four services on the private node, with their own exchange,
queue prefix and bucket on the session's S3 server, and their own in-memory database
server. Not the session's: catalog's outbox sweep publishes whatever any document of
its database still holds, so a session catalog sharing the database would take the
events this stack's outage leaves in its outbox and publish them to the session's
exchange, where this stack's transcoder never sees them. What the stack names on the
broker lives and dies with the private node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from bson import ObjectId
from minio import Minio
from pymongo import AsyncMongoClient

from devstack.mongo_server import run_secantusdb
from devstack.ports import free_port
from devstack.services import RunningServices, start_services
from tests.conftest import Account, make_user, my_videos, request_upload, upload_to_storage
from tests.e2e.test_trimming_api import post_video, requests_of, trim_form
from tests.polling import eventually
from tests.shared.rabbitmq_outage import PrivateNode, private_node
from tests.shared.test_broker_outage import OUTAGE_SECONDS, QUORUM_SETTLE_SECONDS
from tests.stack_cleanup import remove_bucket
from tests.transcoder.media_factory import make_clip

SERVICES = ("gateway", "auth", "catalog", "transcoder")
#: Services with consumers: each must say it is not ready while the broker is gone.
CONSUMING = ("catalog", "transcoder")
#: Reconnecting takes aio-pika's reconnect interval (5 s) and the restore itself.
RECOVERY_SECONDS = 60.0
#: An event left in the outbox waits up to the sweep's grace (10 s) and period (15 s).
JOBS_WITHIN = 90.0
SUBSCRIPTIONS = (
    ("catalog", "users"),
    ("catalog", "video-results"),
    ("catalog", "storage-events"),
    ("catalog", "trim-results"),
    ("transcoder", "jobs"),
)
#: Catalog's database (`KINO_MONGO_DB` of catalog, left at its default).
CATALOG_DB = "kino_catalog"
RESULTS = ("video.processed", "video.failed", "trim.completed", "trim.failed")
JOB_EVENTS = ("job.progressed", *RESULTS)


@dataclass
class BrokerStack:
    """The four services on the private node."""

    running: RunningServices
    node: PrivateNode
    mongo_url: str
    exchange: str
    prefix: str
    bucket: str
    tap: str
    #: When the broker last came (back) up: a quorum queue needs a while before a
    #: kill -9 of its only node is survivable.
    broker_since: float

    @property
    def gateway_url(self) -> str:
        return self.running.gateway_url

    def queues(self) -> list[str]:
        names = []
        for service, subscription in SUBSCRIPTIONS:
            main = f"{self.prefix}.{service}.{subscription}"
            names += [main, f"{main}.dlq"]
        return names


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with private_node() as running:
        yield running


@pytest.fixture(scope="module")
def broker_stack(
    node: PrivateNode, service_env: dict[str, str], run_dir: Path, s3: Minio
) -> Iterator[BrokerStack]:
    prefix = f"brkout-{uuid.uuid4().hex[:8]}"
    base = run_dir / prefix
    bucket = f"kino-{prefix}"
    with run_secantusdb(
        port=free_port(), storage=None, log_path=base / "logs" / "secantusdb.log"
    ) as mongo:
        env = {
            **service_env,
            "KINO_MONGO_URL": mongo.url,
            "KINO_AMQP_URL": node.url,
            "KINO_AMQP_EXCHANGE": f"kino.{prefix}",
            "KINO_AMQP_QUEUE_PREFIX": prefix,
            "KINO_STORAGE_EVENTS_EXCHANGE": f"kino.storage.{prefix}",
            # Catalog creates it at start.
            "KINO_S3_BUCKET": bucket,
            "KINO_UPLOAD_RECONCILE_INTERVAL_SECONDS": "0.5",
        }
        try:
            with start_services(env, base) as running:
                stack = BrokerStack(
                    running,
                    node,
                    mongo.url,
                    env["KINO_AMQP_EXCHANGE"],
                    prefix,
                    bucket,
                    tap=f"{prefix}.test.job-events",
                    broker_since=time.monotonic(),
                )
                yield stack
        finally:
            remove_bucket(s3, bucket)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """MPEG-4 Part 2, so hosting transcodes it (no remux): a second or two of work per
    job, so that the queue is busy when the fault comes."""
    path = tmp_path_factory.mktemp("broker-outage") / "clip.mp4"
    return make_clip(path, seconds=6, size=(480, 270), video_codec="mpeg4").read_bytes()


@pytest.fixture
async def account(http: aiohttp.ClientSession, broker_stack: BrokerStack) -> Account:
    """The owner of the load the fault interrupts."""
    return await make_user(http, broker_stack.gateway_url)


@pytest.fixture
async def uploader(http: aiohttp.ClientSession, broker_stack: BrokerStack) -> Account:
    """Uploads while the broker is down."""
    return await make_user(http, broker_stack.gateway_url)


@pytest.fixture
async def trimmer(http: aiohttp.ClientSession, broker_stack: BrokerStack) -> Account:
    """Asks for a trim while the broker is down."""
    return await make_user(http, broker_stack.gateway_url)


# -- what the API shows --------------------------------------------------------


@dataclass
class Jobs:
    videos: list[str] = field(default_factory=list)
    trims: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [*self.videos, *self.trims]

    def __add__(self, other: Jobs) -> Jobs:
        return Jobs([*self.videos, *other.videos], [*self.trims, *other.trims])


@dataclass(frozen=True)
class Board:
    """One account's jobs as the API shows them."""

    #: Each time a video shows in `/video/my/`: "listed", or its status and whether
    #: the transcoder has taken it ("processing+taken").
    videos: dict[str, list[str]]
    #: Each trim request's attributes.
    trims: dict[str, dict[str, Any]]

    def ended(self, job: str) -> bool:
        if job in self.trims:
            return self.trims[job]["status"] in {"done", "failed"}
        return any(state in {"listed", "failed"} for state in self.videos.get(job, []))

    def taken(self, job: str) -> bool:
        if job in self.trims:
            return bool(self.trims[job]["status"] != "scheduled")
        return self.ended(job) or "processing+taken" in self.videos.get(job, [])

    def states(self, jobs: Jobs) -> Counter[str]:
        """How many of `jobs` have ended, are being worked on, or wait."""
        return Counter(
            "ended" if self.ended(j) else "taken" if self.taken(j) else "waiting" for j in jobs.all
        )


async def board(http: aiohttp.ClientSession, stack: BrokerStack, account: Account) -> Board:
    mine = await my_videos(http, stack.gateway_url, account)
    videos: dict[str, list[str]] = {}
    for video in mine["videos"]:
        videos.setdefault(video["hash_id"], []).append("listed")
    for video in mine["unprocessed_videos"]:
        taken = video["status"] == "processing" and video.get("progress") is not None
        state = "processing+taken" if taken else video["status"]
        videos.setdefault(video["hash_id"], []).append(state)
    trims = {r["id"]: r["attributes"] for r in await requests_of(http, stack.gateway_url, account)}
    return Board(videos, trims)


# -- submitting ----------------------------------------------------------------


async def submit_upload(
    http: aiohttp.ClientSession, stack: BrokerStack, account: Account, clip: bytes, name: str
) -> str:
    """Upload instructions from catalog, the file POSTed to storage; the video's id."""
    instructions = await request_upload(http, stack.gateway_url, account, file_name=name)
    stored = await upload_to_storage(http, instructions, clip)
    assert stored.status in {200, 201, 204}, await stored.text()
    return str(instructions["signatures"]["key"]).removeprefix("incoming/")


async def submit_trim(
    http: aiohttp.ClientSession, stack: BrokerStack, account: Account, clip: bytes
) -> str:
    """Request a trim (201 expected, broker or not: the event waits in the outbox);
    returns the id of its request."""
    before = {r["id"] for r in await requests_of(http, stack.gateway_url, account)}
    status, body = await post_video(
        http, stack.gateway_url, account, trim_form(clip, start="0.5", duration="4")
    )
    assert status == 201, (status, body)
    after = {r["id"] for r in await requests_of(http, stack.gateway_url, account)}
    [request_id] = after - before
    return str(request_id)


async def submit_load(
    http: aiohttp.ClientSession,
    stack: BrokerStack,
    account: Account,
    clip: bytes,
    *,
    uploads: int,
    trims: int,
    label: str,
) -> Jobs:
    jobs = Jobs()
    for n in range(uploads):
        jobs.videos.append(await submit_upload(http, stack, account, clip, f"{label}-{n}.mp4"))
    for _ in range(trims):
        jobs.trims.append(await submit_trim(http, stack, account, clip))
    return jobs


# -- watching the services and the broker ---------------------------------------


class ReadinessWatch:
    """Polls every service's `/ready` in the background and keeps what each answered
    (0: no answer)."""

    def __init__(self, http: aiohttp.ClientSession, urls: dict[str, str]) -> None:
        self._http = http
        self._urls = urls
        self.answers: list[tuple[float, str, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReadinessWatch:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        while True:
            await asyncio.gather(*(self._ask(name) for name in SERVICES))
            await asyncio.sleep(0.1)

    async def _ask(self, name: str) -> None:
        status = await ready_status(self._http, self._urls[name])
        self.answers.append((time.monotonic(), name, status))

    def seen(self, name: str, since: float, until: float) -> set[int]:
        return {status for at, n, status in self.answers if n == name and since <= at <= until}


async def ready_status(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(f"{url}/ready", timeout=aiohttp.ClientTimeout(total=5)) as r:
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def all_ready(http: aiohttp.ClientSession, stack: BrokerStack) -> bool:
    statuses = await asyncio.gather(
        *(ready_status(http, stack.running.admin_urls[name]) for name in SERVICES)
    )
    return set(statuses) == {200}


async def queue_depths(stack: BrokerStack) -> dict[str, int]:
    """Messages waiting in the stack's main queues and DLQs."""
    connection = await aio_pika.connect(stack.node.url)
    async with connection:
        channel = await connection.channel()
        depths = {}
        for name in stack.queues():
            declared = await channel.declare_queue(name, passive=True)
            depths[name] = int(declared.declaration_result.message_count or 0)
        return depths


@dataclass(frozen=True)
class Tapped:
    type: str
    data: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.data.get("id") or self.data.get("trim_id") or self.data.get("video_id"))


async def drain_tap(stack: BrokerStack) -> list[Tapped]:
    """Every job event published since the last drain, from a durable queue of the
    stack's job events (declared at the first drain) that outlives both faults."""
    connection = await aio_pika.connect(stack.node.url)
    tapped = []
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            stack.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(stack.tap, durable=True)
        for key in JOB_EVENTS:
            await queue.bind(exchange, routing_key=key)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            body = json.loads(message.body)
            tapped.append(Tapped(body["type"], body["data"]))
    return tapped


def stored(s3: Minio, bucket: str, prefix: str) -> list[str]:
    """The objects under `prefix`, sorted (SeaweedFS lists an emptied folder as one)."""
    listed = (str(o.object_name) for o in s3.list_objects(bucket, prefix=prefix, recursive=True))
    return sorted(name for name in listed if not name.endswith("/"))


# -- the case ------------------------------------------------------------------


async def outbox_sizes(stack: BrokerStack, jobs: Jobs) -> dict[str, int]:
    """How many events each job's catalog document still holds unpublished (its
    `outbox` array, README "Events and reliability")."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url)
    async with client:
        db = client[CATALOG_DB]
        sizes = {}
        for collection, ids in (("videos", jobs.videos), ("trims", jobs.trims)):
            for job in ids:
                key: object = job if collection == "videos" else ObjectId(job)
                document = await db[collection].find_one({"_id": key}, {"outbox": 1})
                assert document is not None, job
                sizes[job] = len(document.get("outbox") or [])
        return sizes


async def jobs_in_flight(http: aiohttp.ClientSession, transcoder_url: str) -> float:
    """The transcoder's `media_jobs_in_flight`, every kind together."""
    async with http.get(f"{transcoder_url}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("media_jobs_in_flight{")
    )


@dataclass(frozen=True)
class Owned:
    """Jobs of one owner."""

    owner: Account
    jobs: Jobs


@dataclass(frozen=True)
class Fault:
    """Takes the broker down (returns when it is down) and brings it back (returns
    when it answers again)."""

    name: str
    down: Callable[[], Awaitable[None]]
    up: Callable[[], Awaitable[None]]


async def survive(
    fault: Fault,
    http: aiohttp.ClientSession,
    stack: BrokerStack,
    owners: tuple[Account, Account, Account],
    clip: bytes,
    s3: Minio,
) -> None:
    """Load, fault, jobs submitted during the fault, recovery; then every job ended
    once and nothing was duplicated.

    The load is one owner's; the jobs submitted during the fault are two other
    owners', one job each: catalog's fair share holds an owner's jobs beyond a few
    back, unpublished (README "Fair share"), and these must try to reach the broker.
    """
    account, uploader, trimmer = owners
    await drain_tap(stack)
    depths_before = await queue_depths(stack)
    load = await submit_load(
        http, stack, account, clip, uploads=3, trims=2, label=f"{fault.name}-before"
    )

    async def mid_load() -> Counter[str]:
        # A job taken and some not ended: the fault lands in the middle of the queue.
        states = (await board(http, stack, account)).states(load)
        return states if states["ended"] + states["taken"] and states["waiting"] else Counter()

    at_fault = await eventually(mid_load, within=30, interval=0.05)

    async with ReadinessWatch(http, stack.running.admin_urls) as watch:
        fault_at = time.monotonic()
        await fault.down()
        down_at = time.monotonic()
        # Accepted while the broker is down (the trim's POST is 201, not 5xx).
        upload = await submit_upload(http, stack, uploader, clip, f"{fault.name}-during.mp4")
        trim = await submit_trim(http, stack, trimmer, clip)
        during = Jobs([upload], [trim])

        async def waiting_in_outbox() -> bool:
            # The upload was found in storage (pending → processing), and both jobs'
            # events wait in their documents' outbox: nothing lost, nothing taken.
            shown = await board(http, stack, uploader)
            arrived = shown.videos.get(upload) == ["processing"]
            return arrived and min((await outbox_sizes(stack, during)).values()) >= 1

        await eventually(waiting_in_outbox, within=10, interval=0.1)
        assert (await board(http, stack, trimmer)).trims[trim]["status"] == "scheduled"
        await fault.up()
        back_at = time.monotonic()
        await eventually(lambda: all_ready(http, stack), within=RECOVERY_SECONDS, interval=0.1)
        ready_at = time.monotonic()
    stack.broker_since = back_at

    batches = {
        "before": [Owned(account, load)],
        "during": [Owned(uploader, Jobs(videos=[upload])), Owned(trimmer, Jobs(trims=[trim]))],
    }
    ended_at: dict[str, float] = {}

    async def all_ended() -> bool:
        for name, batch in batches.items():
            if name in ended_at:
                continue
            shown = {o.owner.id: await board(http, stack, o.owner) for o in batch}
            if all(shown[o.owner.id].ended(j) for o in batch for j in o.jobs.all):
                ended_at[name] = time.monotonic()
        return len(ended_at) == len(batches)

    await eventually(all_ended, within=JOBS_WITHIN, interval=0.2)

    # Readiness said what was missing while the broker was away.
    said_503 = [n for n in SERVICES if 503 in watch.seen(n, fault_at, back_at)]
    for name in CONSUMING:
        assert name in said_503, (name, watch.seen(name, 0, back_at))
    # Every job ended once, done; nothing shows twice, nothing more was made.
    for owned in (*batches["before"], *batches["during"]):
        shown = await board(http, stack, owned.owner)
        assert shown.videos == {v: ["listed"] for v in owned.jobs.videos}
        trims = {t: a["status"] for t, a in shown.trims.items()}
        assert trims == {t: "done" for t in owned.jobs.trims}
        async with http.get(
            f"{stack.gateway_url}/api/v1/users/videos", headers=owned.owner.auth
        ) as response:
            assert response.status == 200
            clip_list = (await response.json(content_type=None))["data"]
        assert len(clip_list) == len({c["id"] for c in clip_list}) == len(owned.jobs.trims)
    jobs = load + during
    for video in jobs.videos:
        # 480x270: two rungs (its own, listed first, and 240p after), each file and
        # playlist made once.
        expected = [
            f"playback/{video}/{name}"
            for name in ("240p.m3u8", "240p.mp4", "270p.m3u8", "270p.mp4")
        ]

        async def ladder_stored(
            prefix: str = f"playback/{video}/", count: int = len(expected)
        ) -> list[str] | None:
            playback = await asyncio.to_thread(stored, s3, stack.bucket, prefix)
            return playback if len(playback) >= count else None

        assert await eventually(ladder_stored, within=60) == expected
    for trim_id in jobs.trims:
        clips = await asyncio.to_thread(stored, s3, stack.bucket, f"clips/{trim_id}")
        assert clips == [f"clips/{trim_id}.mp4"]
    # Nothing was given up, left behind on the broker or in an outbox, or left
    # running at the transcoder (the run the fault interrupted included).
    assert await queue_depths(stack) == depths_before
    assert set((await outbox_sizes(stack, jobs)).values()) == {0}

    async def idle() -> bool:
        return await jobs_in_flight(http, stack.running.urls["transcoder"]) == 0

    await eventually(idle, within=10)

    tapped = await drain_tap(stack)
    starts = Counter(
        t.job_id for t in tapped if t.type == "job.progressed" and t.data["stage"] == "started"
    )
    results = Counter(t.job_id for t in tapped if t.type in RESULTS)
    assert set(results) >= set(jobs.all), "a job's result never went out"
    print(
        f"\n{fault.name}: {len(jobs.all)}/{len(jobs.all)} jobs survived, each ended once "
        f"({len(load.all)} submitted before the fault, at it {dict(at_fault)}; "
        f"{len(during.all)} accepted while the broker was down, their events in the outbox); "
        f"broker down {back_at - down_at:.1f} s (going down took {down_at - fault_at:.1f} s), "
        f"/ready 503 meanwhile: {', '.join(said_503)}; from the broker back: all services "
        f"ready {ready_at - back_at:.1f} s, jobs from before ended "
        f"{ended_at['before'] - back_at:.1f} s, jobs from during ended "
        f"{ended_at['during'] - back_at:.1f} s; taken more than once: "
        f"{sum(n > 1 for n in starts.values())} job(s), results published more than once: "
        f"{sum(n > 1 for n in results.values())}"
    )


async def test_jobs_survive_the_broker_app_stopped_for_20_seconds(
    http: aiohttp.ClientSession,
    broker_stack: BrokerStack,
    account: Account,
    uploader: Account,
    trimmer: Account,
    clip: bytes,
    s3: Minio,
) -> None:
    node = broker_stack.node
    stopped_at = 0.0

    async def stop() -> None:
        nonlocal stopped_at
        await asyncio.to_thread(node.stop_app)
        stopped_at = time.monotonic()

    async def start() -> None:
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        await asyncio.to_thread(node.start_app)

    fault = Fault("stop_app 20 s", stop, start)
    await survive(fault, http, broker_stack, (account, uploader, trimmer), clip, s3)


async def test_jobs_survive_the_broker_killed_and_started_again(
    http: aiohttp.ClientSession,
    broker_stack: BrokerStack,
    account: Account,
    uploader: Account,
    trimmer: Account,
    clip: bytes,
    s3: Minio,
) -> None:
    node = broker_stack.node
    # The job queue's state must be on disk before its only node is killed.
    await asyncio.sleep(
        max(0.0, broker_stack.broker_since + QUORUM_SETTLE_SECONDS - time.monotonic())
    )

    async def kill() -> None:
        await asyncio.to_thread(node.kill)

    async def start() -> None:
        await asyncio.to_thread(node.start)

    fault = Fault("kill -9", kill, start)
    await survive(fault, http, broker_stack, (account, uploader, trimmer), clip, s3)
