"""What hosting videos and trim requests share: the life of their media job.

A job is held in the database until its owner has a free fair-share slot
(`job_slots.py`), then sent (its event goes to the outbox), started by a worker, and
followed by its reports; one silent for too long is queued again once, then failed.
`MediaJobRepository` holds those queries over a collection of jobs and
`MediaJobLifecycle` the steps; the hosting and trimming rooms subclass both and say
only what differs: their states, ids, events and how a stalled job fails.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from services.catalog.job_slots import JobSlots
from shared.events import Envelope, JobProgressed
from shared.mongo import Document
from shared.outbox import OutboxRelay, guarded_transition

log = structlog.get_logger(__name__)

#: The failure reason of a job that stalled twice (its code is `stalled`).
STALLED_REASON = "processing stopped making progress"


class MediaJob(Protocol):
    @property
    def job_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def stall_requeued(self) -> bool: ...
    @property
    def correlation_id(self) -> str | None: ...


J = TypeVar("J", bound=MediaJob)


@dataclass(frozen=True)
class JobStates:
    """The statuses a job's life goes through in one collection."""

    #: Held, and sent but not started yet.
    waiting: str
    #: Started by a worker (reports come in).
    running: str


def at_attempt(attempt: int) -> dict[str, Any]:
    """The filter of a job at `attempt`; videos stored before retries existed have no
    `attempt` and are at the first."""
    return {"attempt": attempt} if attempt > 1 else {"attempt": {"$in": [1, None]}}


class MediaJobRepository(ABC, Generic[J]):
    """The job-lifecycle queries over a collection of jobs."""

    def __init__(
        self, collection: AsyncCollection[Document], states: JobStates, queue_order: str
    ) -> None:
        self.collection = collection
        self._states = states
        #: The field that orders an owner's held jobs, oldest first.
        self._queue_order = queue_order

    @abstractmethod
    def document_id(self, job_id: str) -> object | None:
        """The stored `_id` of a job id; None for an id no job can have."""

    @abstractmethod
    def from_document(self, document: Mapping[str, Any]) -> J: ...

    def _at(self, job_id: str, attempt: int) -> dict[str, Any] | None:
        doc_id = self.document_id(job_id)
        return None if doc_id is None else {"_id": doc_id, **at_attempt(attempt)}

    async def oldest_held(self, owner: str) -> J | None:
        doc = await self.collection.find_one(
            {"user_id": owner, "status": self._states.waiting, "held": True},
            sort=[(self._queue_order, ASCENDING), ("_id", ASCENDING)],
        )
        return self.from_document(doc) if doc else None

    async def send(self, job: J, event: Envelope) -> bool:
        """Let a held job go: no longer held, its event in the outbox."""
        query = self._at(job.job_id, job.attempt)
        if query is None:
            return False
        sent = await guarded_transition(
            self.collection,
            {**query, "held": True},
            from_status=[self._states.waiting],
            to_status=self._states.waiting,
            changes={"held": False},
            events=[event],
        )
        return sent is not None

    async def owners_with_held(self) -> list[str]:
        query = {"status": self._states.waiting, "held": True}
        return [str(owner) for owner in await self.collection.distinct("user_id", query)]

    async def is_sent(self, job_id: str) -> bool:
        """Its job is at the transcoder (waiting and not held, or running)."""
        doc_id = self.document_id(job_id)
        query = {
            "_id": doc_id,
            "status": {"$in": list({self._states.waiting, self._states.running})},
            "held": {"$ne": True},
        }
        return doc_id is not None and await self.collection.count_documents(query, limit=1) > 0

    async def stalled(self, cutoff: datetime) -> list[J]:
        """Running jobs whose worker reported nothing since `cutoff` (only those a worker
        started: a job still waiting in the queue has no `progress_at`)."""
        cursor = self.collection.find(
            {"status": self._states.running, "progress_at": {"$lt": cutoff}}
        )
        return [self.from_document(doc) async for doc in cursor]

    async def requeue_stalled(
        self, job: J, cutoff: datetime, now: datetime, event: Envelope
    ) -> bool:
        """Queue a stalled job again, once (its lease starts over)."""
        query = self._at(job.job_id, job.attempt)
        if query is None:
            return False
        moved = await guarded_transition(
            self.collection,
            {**query, "progress_at": {"$lt": cutoff}, "stall_requeued": {"$ne": True}},
            from_status=[self._states.running],
            to_status=self._states.running,
            changes={"stall_requeued": True, "progress_at": now, "updated_at": now},
            events=[event],
        )
        return moved is not None

    async def record_progress(
        self, job_id: str, attempt: int, fraction: float, eta_seconds: float | None, at: datetime
    ) -> None:
        """Keep the latest report of a job running at `attempt`; fractions only grow (a
        late or repeated report changes nothing)."""
        query = self._at(job_id, attempt)
        if query is None:
            return
        await self.collection.update_one(
            {
                **query,
                "status": self._states.running,
                "$or": [{"progress": None}, {"progress": {"$lt": fraction}}],
            },
            {"$set": {"progress": fraction, "eta_seconds": eta_seconds, "progress_at": at}},
        )


class MediaJobLifecycle(ABC, Generic[J]):
    """Sending held jobs as slots free, freeing slots as jobs end, following reports and
    sweeping stalled jobs."""

    def __init__(self, jobs: MediaJobRepository[J], slots: JobSlots, outbox: OutboxRelay) -> None:
        self._jobs = jobs
        self._slots = slots
        self._outbox = outbox

    @abstractmethod
    def _slot(self, job: J) -> str:
        """The name of the job's fair-share slot (`job_slots.video_job`, `trim_job`)."""

    @abstractmethod
    def _job_event(self, job: J, correlation_id: str | None) -> Envelope:
        """The event that sends the job to the transcoder, at its attempt."""

    @abstractmethod
    async def _fail_stalled(self, job: J, now: datetime) -> J | None:
        """Fail a job that stalled again; None when it was no longer running."""

    async def dispatch(self, owner: str) -> None:
        """Send the owner's held jobs to the transcoder, oldest first, while the owner
        has free slots (`JobSlots`)."""
        while (job := await self._jobs.oldest_held(owner)) is not None:
            if not await self._slots.take(owner, self._slot(job)):
                return
            if await self._jobs.send(job, self._job_event(job, job.correlation_id)):
                await self._publish(job.job_id)

    async def owners_with_held(self) -> list[str]:
        return await self._jobs.owners_with_held()

    async def is_sent(self, job_id: str) -> bool:
        return await self._jobs.is_sent(job_id)

    async def progressed(self, event: JobProgressed) -> None:
        await self._jobs.record_progress(
            event.id, event.attempt, event.fraction, event.eta_seconds, datetime.now(UTC)
        )

    async def sweep_stalled(self, stall: timedelta) -> int:
        """Treat started jobs silent for `stall` as lost: queue each again once, then fail
        it `stalled`. Returns how many were requeued or failed."""
        now = datetime.now(UTC)
        cutoff = now - stall
        swept = 0
        for job in await self._jobs.stalled(cutoff):
            if not job.stall_requeued:
                event = self._job_event(job, correlation_id=None)
                if await self._jobs.requeue_stalled(job, cutoff, now, event):
                    log.warning("stalled job queued again", job=self._slot(job))
                    await self._publish(job.job_id)
                    swept += 1
                continue
            failed = await self._fail_stalled(job, now)
            if failed is not None:
                log.warning("stalled job failed", job=self._slot(job))
                await self._job_ended(failed)
                swept += 1
        return swept

    async def _job_ended(self, job: J | None) -> None:
        """A transition ended the job: free its slot for the owner's next."""
        if job is not None and await self._slots.release(self._slot(job)):
            await self.dispatch(job.user_id)

    async def _publish(self, job_id: str) -> None:
        await self._outbox.publish_soon(self._jobs.document_id(job_id))
