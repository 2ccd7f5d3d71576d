"""What an operator scrapes from `/metrics`: job durations by kind and outcome,
failures by code and jobs in flight (transcoder), queue depths (every consumer),
outbox backlog (catalog, auth) and each process's own metrics."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from devstack.services import RunningServices
from tests.conftest import make_user
from tests.e2e.test_trimming_api import post_video, requests_of, trim_form
from tests.polling import eventually
from tests.transcoder.media_factory import make_clip

#: Queue depths and outbox backlogs are read every 15 s.
SLOW_GAUGE_SECONDS = 40


async def _metrics(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/metrics") as response:
        assert response.status == 200
        return await response.text()


def _value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels}` (0 when absent)."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if match and all(label in (match.group(1) or "") for label in wanted):
            return float(match.group(2))
    return 0.0


async def test_job_metrics_count_outcomes_and_failure_codes(
    http: aiohttp.ClientSession, stack: RunningServices, tmp_path: Path
) -> None:
    transcoder = stack.urls["transcoder"]
    before = await _metrics(http, transcoder)
    account = await make_user(http, stack.gateway_url)
    make_clip(tmp_path / "clip.mp4", seconds=2)
    clip = (tmp_path / "clip.mp4").read_bytes()
    for start in ("0.5", "30"):  # one done, one failing start_beyond_end
        status, _ = await post_video(http, stack.gateway_url, account, trim_form(clip, start=start))
        assert status == 201

    async def both_ended() -> bool:
        requests = await requests_of(http, stack.gateway_url, account)
        return all(r["attributes"]["status"] in {"done", "failed"} for r in requests)

    await eventually(both_ended, within=60)

    async def counted() -> str | None:
        text = await _metrics(http, transcoder)
        done = "media_job_duration_seconds_count"
        grew = _value(text, done, kind="trim", outcome="done") > _value(
            before, done, kind="trim", outcome="done"
        )
        failures = "media_job_failures_total"
        failed = _value(text, failures, kind="trim", code="start_beyond_end") > _value(
            before, failures, kind="trim", code="start_beyond_end"
        )
        return text if grew and failed else None

    text = await eventually(counted, within=10)
    assert _value(text, "media_job_duration_seconds_count", kind="trim", outcome="failed") >= 1
    assert 'media_jobs_in_flight{kind="trim"} 0.0' in text
    assert _value(text, "process_resident_memory_bytes") > 0


async def test_queue_depths_and_outbox_backlog_are_scraped(
    http: aiohttp.ClientSession, stack: RunningServices, namespace: str
) -> None:
    async def gauges() -> tuple[str, str] | None:
        transcoder = await _metrics(http, stack.urls["transcoder"])
        catalog = await _metrics(http, stack.urls["catalog"])
        jobs = f'broker_queue_messages{{queue="{namespace}.transcoder.jobs"}}'
        backlog = 'outbox_pending_documents{collection="videos"}'
        return (transcoder, catalog) if jobs in transcoder and backlog in catalog else None

    transcoder, catalog = await eventually(gauges, within=SLOW_GAUGE_SECONDS, interval=1)
    assert f'broker_queue_messages{{queue="{namespace}.transcoder.jobs.dlq"}}' in transcoder
    assert 'outbox_pending_documents{collection="trims"}' in catalog
    assert _value(catalog, "process_cpu_seconds_total") > 0
