"""Live events' domain: logging what an owner should hear, and following an owner's log.

Every connection reads the log itself (`_id`-free: by the owner's `seq`), every
`poll_seconds`, so any catalog replica serves any stream whichever replica logged the
events. Ids are delivered in order without holes: an entry whose predecessor is not
stored yet (its number taken on another replica, its insert a few milliseconds away)
waits until the hole fills, or for `GAP_GRACE_SECONDS` of this reader's clock, or at
once when the entry is older than `GAP_STALE_SECONDS` (a number never stored: a race on
the same source, a crash between the two writes, or entries expired by retention).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from services.catalog.events.repository import EventLogRepository, LoggedEvent, NewEntry
from services.catalog.webhooks.service import Occurrence, payload

#: How long a reader waits for a missing id before skipping it.
GAP_GRACE_SECONDS = 1.0
#: An entry logged this long ago no longer waits for a missing predecessor.
GAP_STALE_SECONDS = 60.0
#: Entries read per query.
BATCH = 100


class Heartbeat:
    """Nothing happened for a heartbeat interval: the stream says it is alive."""


HEARTBEAT = Heartbeat()


class LiveEvents:
    def __init__(
        self,
        repository: EventLogRepository,
        *,
        poll_seconds: float,
        heartbeat_seconds: float,
        retention: timedelta,
    ) -> None:
        self._repository = repository
        self._poll_seconds = poll_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._retention = retention

    async def record(self, occurrence: Occurrence) -> int | None:
        """Log an occurrence with the body its webhook would carry; idempotent per
        `source_key`. Its id, or None when it was logged already."""
        return await self._repository.append(
            NewEntry(
                owner=occurrence.owner,
                event_type=occurrence.event_type,
                source=occurrence.source_key,
                body=payload(occurrence).decode(),
                created_at=datetime.now(UTC),
            )
        )

    async def expire(self) -> int:
        return await self._repository.expire(datetime.now(UTC) - self._retention)

    async def start(self, owner: str, resume_after: int | None) -> int:
        """The id a stream continues after: the client's `Last-Event-ID` (an id older
        than the retention resumes at the oldest kept), else the latest (from now)."""
        if resume_after is not None:
            return resume_after
        return await self._repository.last_seq(owner)

    async def follow(
        self, owner: str, after: int, active: Callable[[], bool]
    ) -> AsyncIterator[LoggedEvent | Heartbeat]:
        """The owner's events after `after`, in order, as they are logged, with a
        heartbeat every `heartbeat_seconds`, while `active()`."""
        last = after
        gap_since: float | None = None
        next_beat = time.monotonic() + self._heartbeat_seconds
        while active():
            batch = await self._repository.after(owner, last, BATCH)
            for event in batch:
                if event.seq != last + 1 and not self._gap_over(event, gap_since):
                    gap_since = gap_since or time.monotonic()
                    break
                gap_since = None
                last = event.seq
                yield event
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self._heartbeat_seconds
                yield HEARTBEAT
            if len(batch) < BATCH or gap_since is not None:
                await asyncio.sleep(self._poll_seconds)

    @staticmethod
    def _gap_over(event: LoggedEvent, gap_since: float | None) -> bool:
        if gap_since is not None and time.monotonic() - gap_since >= GAP_GRACE_SECONDS:
            return True
        return datetime.now(UTC) - event.created_at > timedelta(seconds=GAP_STALE_SECONDS)
