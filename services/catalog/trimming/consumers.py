"""Event edges of trimming: the transcoder's progress and results."""

from __future__ import annotations

from services.catalog.trimming.service import TrimmingService
from shared.events import Envelope, JobProgressed, TrimCompleted, TrimFailed
from shared.messaging import Subscription


def trim_results_subscription(trimming: TrimmingService) -> Subscription:
    subscription = Subscription("trim-results")

    @subscription.on(JobProgressed)
    async def job_progressed(event: JobProgressed, _: Envelope) -> None:
        if event.job != "trim":
            return
        if event.stage == "started":
            await trimming.started(event)
        else:
            await trimming.progressed(event)

    @subscription.on(TrimCompleted)
    async def trim_completed(event: TrimCompleted, _: Envelope) -> None:
        await trimming.completed(event)

    @subscription.on(TrimFailed)
    async def trim_failed(event: TrimFailed, _: Envelope) -> None:
        await trimming.failed(event)

    return subscription
