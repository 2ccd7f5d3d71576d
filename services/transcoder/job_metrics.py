"""The transcoder's job metrics for operators: how long jobs take by kind and outcome,
failures by code, and jobs in flight."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Kind = Literal["video", "trim"]

#: Media jobs last from under a second (a remux) to an hour (a long transcode).
_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass
class JobOutcome:
    """Set by the job: `done`, or `failed` with its code. A job that raises is `error`
    (it will be retried, or given up and counted then)."""

    outcome: str = "error"
    code: str | None = None

    def done(self) -> None:
        self.outcome = "done"

    def failed(self, code: str) -> None:
        self.outcome, self.code = "failed", code


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._duration = Histogram(
            "media_job_duration_seconds",
            "Media jobs by kind and outcome (done, failed, error), from taken to result",
            ["kind", "outcome"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self._failures = Counter(
            "media_job_failures",
            "Media jobs that ended failed, by kind and failure code",
            ["kind", "code"],
            registry=registry,
        )
        self._in_flight = Gauge(
            "media_jobs_in_flight", "Media jobs being worked on", ["kind"], registry=registry
        )

    @contextmanager
    def track(self, kind: Kind) -> Iterator[JobOutcome]:
        outcome = JobOutcome()
        started = time.perf_counter()
        self._in_flight.labels(kind).inc()
        try:
            yield outcome
        finally:
            self._in_flight.labels(kind).dec()
            self._duration.labels(kind, outcome.outcome).observe(time.perf_counter() - started)
            if outcome.code is not None:
                self.failed(kind, outcome.code)

    def failed(self, kind: Kind, code: str) -> None:
        self._failures.labels(kind, code).inc()
