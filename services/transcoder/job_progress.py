"""A media job's progress events: `started` when a worker takes the job (catalog's
lease starts there), then the fraction done with an ETA at the pace so far, at most once
per interval. The media work reports from its executor thread; the events are published
from the event loop, and a failed publish never fails the job (progress is for people
watching, the result is what counts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import structlog

from shared.events import JobProgressed

log = structlog.get_logger(__name__)

#: At most one progress event per job this often.
PROGRESS_INTERVAL_SECONDS = 1.0

Publish = Callable[[JobProgressed], Awaitable[object]]


class JobProgress:
    def __init__(
        self,
        publish: Publish,
        job: Literal["video", "trim"],
        job_id: str,
        attempt: int,
        *,
        interval: float = PROGRESS_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._job = job
        self._id = job_id
        self._attempt = attempt
        self._interval = interval
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._started_at = clock()
        self._last_report = self._started_at
        self._sending: set[asyncio.Task[None]] = set()

    async def started(self) -> None:
        """The worker took the job (published before any work, and awaited)."""
        self._started_at = self._last_report = self._clock()
        await self._publish(self._event("started", 0.0, None))

    def report(self, fraction: float) -> None:
        """The media work's `Progress` callback: safe to call from any thread."""
        now = self._clock()
        if now - self._last_report < self._interval:
            return
        self._last_report = now
        elapsed = now - self._started_at
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        event = self._event("working", fraction, eta)
        self._loop.call_soon_threadsafe(self._send, event)

    async def settled(self) -> None:
        """Wait for the progress events still being sent (before the job's result, so
        that none arrives after it)."""
        if self._sending:
            await asyncio.gather(*self._sending)

    def _event(
        self, stage: Literal["started", "working"], fraction: float, eta: float | None
    ) -> JobProgressed:
        return JobProgressed(
            job=self._job,
            id=self._id,
            stage=stage,
            fraction=fraction,
            attempt=self._attempt,
            eta_seconds=None if eta is None else round(eta, 1),
        )

    def _send(self, event: JobProgressed) -> None:
        task = self._loop.create_task(self._publish_quietly(event))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish_quietly(self, event: JobProgressed) -> None:
        try:
            await self._publish(event)
        except Exception as exc:
            log.warning("progress event not published", job_id=self._id, error=repr(exc))
