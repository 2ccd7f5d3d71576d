"""The S3 server killed (`kill -9`) for 45 s while jobs run: every job ends, `done`
after the outage or `failed` with `storage_error`, never stuck in processing.

Two stacks share one private SeaweedFS (the session's is never touched), so one outage
shows both outcomes:

- *brief*: 3 deliveries 2 s apart, a budget spent well within the outage. Its jobs are
  given up while storage is still down, their messages land in the DLQ, and each must
  end `failed`/`storage_error` (the reported defect: it stayed `processing` forever
  and restart answered 422). Once storage is back, restarting a failed trim answers
  200 and the new attempt ends `done`.
- *patient*: 15 deliveries 4 s apart (at least 56 s of waiting alone, longer than the
  outage and the restart), so its jobs survive the outage and end `done`/processed.

In each stack, a hosting upload long enough to transcode for a few seconds is taken
by the transcoder, trims are submitted behind it (catalog streams their sources into
S3, so storage must be up for that), then the S3 server is killed: every job is in
flight when storage goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest

from tests.conftest import Account, make_user, my_videos, upload_video
from tests.e2e.storage_outage import (
    OutageStack,
    PrivateS3,
    outage_stack,
    private_s3,
    stack_prefix,
)
from tests.e2e.test_trimming_api import post_video, requests_of, trim_form
from tests.polling import eventually
from tests.stack_cleanup import declared_exchanges, declared_queues
from tests.transcoder.media_factory import make_clip

OUTAGE_SECONDS = 45.0
TRIMS_PER_STACK = 3
#: How often the jobs' states are read through the gateways while waiting.
POLL_SECONDS = 0.2
#: After storage is back: the patient stack's next delivery (4 s) and its queued jobs.
RECOVERY_SECONDS = 60.0
STORAGE_ERROR = "storage_error"


@dataclass(frozen=True)
class RetryBudget:
    delay_seconds: float
    max_attempts: int


BRIEF = RetryBudget(delay_seconds=2, max_attempts=3)
PATIENT = RetryBudget(delay_seconds=4, max_attempts=15)


@dataclass(frozen=True)
class Rig:
    s3: PrivateS3
    brief: OutageStack
    patient: OutageStack

    @property
    def stacks(self) -> tuple[OutageStack, OutageStack]:
        return self.brief, self.patient


@pytest.fixture
async def exchanges_to_delete(service_env: dict[str, str]) -> AsyncIterator[list[str]]:
    """Exchanges the test's stacks declared, deleted once the stacks are stopped."""
    names: list[str] = []
    yield names
    connection = await aio_pika.connect(service_env["KINO_AMQP_URL"])
    async with connection:
        for name in names:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.exchange_delete(name)


@pytest.fixture
def rig(
    service_env: dict[str, str],
    amqp_cleanup: list[str],
    exchanges_to_delete: list[str],
    tmp_path: Path,
) -> Iterator[Rig]:
    """A private S3 server and the two stacks on it, started side by side."""
    budgets = {"brief": BRIEF, "patient": PATIENT}
    prefixes = {name: stack_prefix(name) for name in budgets}
    for prefix in prefixes.values():
        amqp_cleanup.extend(declared_queues(prefix))
        exchanges_to_delete.extend(declared_exchanges(prefix))
    with ExitStack() as started:
        s3 = started.enter_context(private_s3(tmp_path / "s3"))
        # One exit stack per stack, so that they start, and stop, side by side.
        runs = {name: started.enter_context(ExitStack()) for name in budgets}
        with ThreadPoolExecutor(max_workers=len(budgets)) as pool:
            futures = {
                name: pool.submit(
                    runs[name].enter_context,
                    outage_stack(
                        name,
                        prefixes[name],
                        service_env,
                        s3,
                        tmp_path / name,
                        retry_delay_seconds=budget.delay_seconds,
                        max_attempts=budget.max_attempts,
                    ),
                )
                for name, budget in budgets.items()
            }
        yield Rig(s3, futures["brief"].result(), futures["patient"].result())
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            list(pool.map(ExitStack.close, runs.values()))
        if s3.running:
            s3.kill()  # its data is thrown away: no need to wait for a graceful stop


@dataclass(frozen=True)
class Media:
    #: MPEG-4 Part 2: transcoded to H.264, a few seconds of work for the transcoder.
    long_upload: bytes
    trim_source: bytes


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    directory = tmp_path_factory.mktemp("storage-outage")
    long_upload = make_clip(
        directory / "long.mp4", seconds=10, size=(640, 360), video_codec="mpeg4"
    )
    trim_source = make_clip(directory / "short.mp4", seconds=3)
    return Media(long_upload.read_bytes(), trim_source.read_bytes())


@dataclass
class Job:
    stack: str
    kind: str  # "trim" or "video"
    id: str
    status: str = "submitted"
    failure_code: str | None = None
    failure_reason: str | None = None
    #: When a poll first saw it ended (time.monotonic()).
    ended_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def outcome(self) -> str:
        return self.status if self.failure_code is None else f"{self.status}/{self.failure_code}"


class JobWatch:
    """Reads every job's state through its stack's gateway, as a client would, and
    notes when each was first seen ended."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = http
        self._owners: dict[str, tuple[OutageStack, Account]] = {}
        self.jobs: dict[str, Job] = {}

    def add(self, stack: OutageStack, account: Account, kind: str, job_id: str) -> None:
        self._owners[stack.name] = (stack, account)
        self.jobs[job_id] = Job(stack.name, kind, job_id)

    def of(self, stack: OutageStack, kind: str | None = None) -> list[Job]:
        return [
            job
            for job in self.jobs.values()
            if job.stack == stack.name and (kind is None or job.kind == kind)
        ]

    async def poll(self) -> None:
        for stack, account in self._owners.values():
            trims, videos = await asyncio.gather(
                requests_of(self._http, stack.gateway_url, account),
                my_videos(self._http, stack.gateway_url, account),
            )
            now = time.monotonic()
            for request in trims:
                attributes = request["attributes"]
                self._saw(request["id"], attributes["status"], attributes, now, {"done", "failed"})
            for video in videos["videos"]:
                self._saw(video["hash_id"], "processed", {}, now, {"processed"})
            for video in videos["unprocessed_videos"]:
                self._saw(video["hash_id"], video["status"], video, now, {"failed"})

    def _saw(
        self, job_id: str, status: str, attributes: dict[str, Any], now: float, final: set[str]
    ) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        job.status = status
        job.failure_code = attributes.get("failure_code")
        job.failure_reason = attributes.get("failure_reason")
        if status in final:
            job.ended_at = job.ended_at or now
        else:
            job.ended_at = None  # restarted: a new attempt runs

    async def until(self, condition: Callable[[], bool], *, within: float, what: str) -> None:
        async def met() -> bool:
            await self.poll()
            return condition()

        try:
            await eventually(met, within=within, interval=POLL_SECONDS)
        except AssertionError as exc:
            jobs = [(job.stack, job.kind, job.outcome) for job in self.jobs.values()]
            raise AssertionError(f"{what}: {exc}; jobs: {jobs}") from None

    async def through(self, deadline: float) -> None:
        """Keep watching until `deadline` (time.monotonic()): the scenario's own clock,
        not a wait for something to happen."""
        while (left := deadline - time.monotonic()) > 0:
            await self.poll()
            await asyncio.sleep(min(POLL_SECONDS, left))


async def dead_lettered(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def restart(
    http: aiohttp.ClientSession, stack: OutageStack, account: Account, trim_id: str
) -> int:
    async with http.post(
        f"{stack.gateway_url}/api/v1/users/requests/{trim_id}/restart", headers=account.auth
    ) as response:
        return response.status


async def test_every_job_ends_when_storage_is_killed_for_45_seconds(
    http: aiohttp.ClientSession, rig: Rig, media: Media, service_env: dict[str, str]
) -> None:
    brief, patient = rig.stacks
    watch = JobWatch(http)
    accounts = {stack.name: await make_user(http, stack.gateway_url) for stack in rig.stacks}

    # A long transcode in each stack, taken by its transcoder...
    for stack in rig.stacks:
        account = accounts[stack.name]
        hash_id = await upload_video(
            http, stack.gateway_url, account, media.long_upload, file_name="long.mp4"
        )
        watch.add(stack, account, "video", hash_id)

    async def taken(stack: OutageStack) -> bool:
        mine = await my_videos(http, stack.gateway_url, accounts[stack.name])
        return any("progress" in video for video in mine["unprocessed_videos"])

    for stack in rig.stacks:
        await eventually(partial(taken, stack), within=30, interval=POLL_SECONDS)

    # ...and trims behind it, stored while storage is up.
    posted = await asyncio.gather(
        *(
            post_video(
                http,
                stack.gateway_url,
                accounts[stack.name],
                trim_form(media.trim_source, name=f"trim {i}", start="1", duration="2"),
            )
            for stack in rig.stacks
            for i in range(TRIMS_PER_STACK)
        )
    )
    assert [status for status, _ in posted] == [201] * len(posted), posted
    for stack in rig.stacks:
        account = accounts[stack.name]
        for request in await requests_of(http, stack.gateway_url, account):
            watch.add(stack, account, "trim", request["id"])

    await asyncio.to_thread(rig.s3.kill)
    killed_at = time.monotonic()
    storage_back_due = killed_at + OUTAGE_SECONDS

    # The brief stack's budget runs out while storage is down: every job of it ends.
    await watch.until(
        lambda: all(job.ended for job in watch.of(brief)),
        within=OUTAGE_SECONDS - 5,
        what="brief jobs still running while storage is down",
    )
    brief_ended_at = time.monotonic()
    await watch.through(storage_back_due)
    survivors = [job for job in watch.of(patient) if not job.ended]

    await asyncio.to_thread(rig.s3.start)
    back_at = time.monotonic()
    await watch.until(
        lambda: all(job.ended for job in watch.jobs.values()),
        within=RECOVERY_SECONDS,
        what="jobs still running after storage came back",
    )
    all_ended_at = max(job.ended_at or 0.0 for job in watch.jobs.values())
    # How the outage left them (restarting changes the brief trims' states).
    settled = {job.id: replace(job) for job in watch.jobs.values()}

    def of(stack: OutageStack, kind: str | None = None) -> list[Job]:
        return [
            job
            for job in settled.values()
            if job.stack == stack.name and (kind is None or job.kind == kind)
        ]

    def outcomes(stack: OutageStack) -> dict[str, int]:
        return dict(Counter(job.outcome for job in of(stack)))

    # Restarting the brief stack's failed trims, storage being back: 200, then done.
    failed_trims = [job.id for job in of(brief, "trim") if job.status == "failed"]
    restarted_at = time.monotonic()
    restarts = [await restart(http, brief, accounts[brief.name], id_) for id_ in failed_trims]
    await watch.until(
        lambda: all(watch.jobs[id_].ended for id_ in failed_trims),
        within=RECOVERY_SECONDS,
        what="restarted trims still running",
    )
    restarts_done_at = time.monotonic()
    restarted_outcomes = [watch.jobs[id_].outcome for id_ in failed_trims]

    amqp_url = service_env["KINO_AMQP_URL"]
    dlq = {
        stack.name: await dead_lettered(amqp_url, f"{stack.queue('transcoder', 'jobs')}.dlq")
        for stack in rig.stacks
    }

    print(
        f"\n[storage outage] S3 killed for {back_at - killed_at:.1f} s "
        f"(starting it again took {back_at - storage_back_due:.1f} s)"
    )
    for stack in rig.stacks:
        print(f"[storage outage] {stack.name}: {outcomes(stack)}")
    print(
        f"[storage outage] brief: every job ended {brief_ended_at - killed_at:.1f} s after the "
        f"kill; patient: {len(survivors)} jobs survived the outage; every job ended "
        f"{all_ended_at - back_at:.1f} s after S3 was back"
    )
    print(
        f"[storage outage] brief: {len(failed_trims)} failed trims restarted, answers "
        f"{restarts}, now {restarted_outcomes} after {restarts_done_at - restarted_at:.1f} s"
    )
    print(f"[storage outage] DLQ messages: {dlq}")

    # Nothing stuck, and each job ended one of the two ways.
    for job in of(brief):
        failed_on_storage = job.status == "failed" and job.failure_code == STORAGE_ERROR
        assert job.status in {"done", "processed"} or failed_on_storage, job
    brief_failed = [job for job in of(brief) if job.status == "failed"]
    assert brief_failed, "no brief job was in flight when storage went"
    assert all(job.failure_reason for job in brief_failed)
    # Each given up once: reported, and its message in the DLQ.
    assert dlq[brief.name] == len(brief_failed)
    # The defect: such a request can be restarted, and now ends done.
    assert restarts == [200] * len(failed_trims)
    assert restarted_outcomes == ["done"] * len(failed_trims)

    assert survivors, "no patient job was in flight when storage went"
    assert set(outcomes(patient)) <= {"done", "processed"}, outcomes(patient)
    assert dlq[patient.name] == 0
