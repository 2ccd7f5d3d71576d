"""Transactional outbox kept inside the aggregate's own MongoDB document.

A state change and the events it causes are written in one single-document
update (an `outbox` array on the document), so neither exists without the other
even without multi-document transactions. The events are then published with
confirms and pulled from the document. If the process dies or the broker is down
in between, `OutboxRelay.sweep` (run periodically) publishes what is left.
Consumers are idempotent, so the rare duplicate after a crash is harmless.

Each entry keeps the trace context it was made in (`trace`: the W3C `traceparent`
and `tracestate`), so an event the sweep publishes minutes later still continues the
trace of the request or message that caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Gauge
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from shared import tracing
from shared.events import Envelope
from shared.messaging import Broker

log = structlog.get_logger(__name__)

OUTBOX_FIELD = "outbox"


def outbox_entry(envelope: Envelope) -> dict[str, Any]:
    """The value to `$push` (or insert) into a document's outbox, with the current
    trace context (none when there is no span)."""
    entry: dict[str, Any] = {
        "id": str(envelope.id),
        "at": envelope.occurred_at,
        "envelope": envelope.model_dump(mode="json"),
    }
    trace_headers = tracing.current_trace_headers()
    if trace_headers:
        entry["trace"] = trace_headers
    return entry


async def guarded_transition(
    collection: AsyncCollection[dict[str, Any]],
    query: Mapping[str, Any],
    *,
    from_status: Iterable[str],
    to_status: str,
    changes: Mapping[str, Any] | None = None,
    events: Sequence[Envelope] = (),
) -> dict[str, Any] | None:
    """Move the document `query` finds from one of `from_status` to `to_status`.

    One single-document update: the state it leaves is in the filter, so a duplicated
    or redelivered event changes nothing twice; `changes` are set with the new status and
    the events the change causes ride into the outbox with it. Returns the document as
    it is after the change, or None when nothing matched (no change was made).
    """
    update: dict[str, Any] = {"$set": {"status": to_status, **(changes or {})}}
    if events:
        update["$push"] = {OUTBOX_FIELD: {"$each": [outbox_entry(e) for e in events]}}
    return await collection.find_one_and_update(
        {**query, "status": {"$in": list(from_status)}},
        update,
        return_document=ReturnDocument.AFTER,
    )


def outbox_backlog_gauge(registry: CollectorRegistry) -> Gauge:
    return Gauge(
        "outbox_pending_documents",
        "Documents whose events are not published yet, by collection",
        ["collection"],
        registry=registry,
    )


async def ensure_outbox_index(collection: AsyncCollection[dict[str, Any]]) -> None:
    """The index the relay's sweep queries (pending entries by age)."""
    await collection.create_index(f"{OUTBOX_FIELD}.at", sparse=True)


class OutboxRelay:
    """Publishes the pending events of one collection's documents."""

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        broker: Broker,
        *,
        grace_seconds: float = 10.0,
        backlog: Gauge | None = None,
    ) -> None:
        self._collection = collection
        self._broker = broker
        self._grace = timedelta(seconds=grace_seconds)
        self._backlog = None if backlog is None else backlog.labels(collection.name)

    async def ensure_indexes(self) -> None:
        await ensure_outbox_index(self._collection)

    async def flush(self, document_id: Any) -> None:
        """Publish one document's pending events now (right after writing them)."""
        document = await self._collection.find_one({"_id": document_id}, {OUTBOX_FIELD: 1})
        if document is not None:
            await self._publish(document)

    async def publish_soon(self, document_id: Any) -> None:
        """Publish now if the broker allows; otherwise the sweep does it later.

        For callers that just made a change durable: the change stands either way,
        so a broker outage must not turn it into an error.
        """
        try:
            await self.flush(document_id)
        except Exception:
            log.warning(
                "events left in the outbox for the sweep", document=str(document_id), exc_info=True
            )

    async def sweep(self) -> int:
        """Publish events left pending longer than the grace period; returns how many.
        The backlog gauge is set whatever happens (a broker outage is when it grows)."""
        cutoff = datetime.now(UTC) - self._grace
        published = 0
        cursor = self._collection.find({f"{OUTBOX_FIELD}.at": {"$lt": cutoff}}, {OUTBOX_FIELD: 1})
        try:
            async for document in cursor.limit(500):
                published += await self._publish(document)
        finally:
            if self._backlog is not None:
                pending = {f"{OUTBOX_FIELD}.at": {"$exists": True}}
                self._backlog.set(await self._collection.count_documents(pending))
        if published:
            log.info("outbox sweep published pending events", count=published)
        return published

    async def _publish(self, document: dict[str, Any]) -> int:
        entries = document.get(OUTBOX_FIELD) or []
        for entry in entries:
            await self._broker.publish_envelope(
                Envelope.model_validate(entry["envelope"]),
                # Made in no span (or before entries kept one): the current context.
                context=tracing.extract(entry["trace"]) if entry.get("trace") else None,
            )
            await self._collection.update_one(
                {"_id": document["_id"]}, {"$pull": {OUTBOX_FIELD: {"id": entry["id"]}}}
            )
        return len(entries)
