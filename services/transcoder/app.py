"""The transcoder's app factory: a broker worker with health, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from services.transcoder.consumers import job_subscription
from services.transcoder.job_metrics import JobMetrics
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.probe import MediaLimits
from services.transcoder.service import MediaJobs, MediaSettings
from services.transcoder.settings import TranscoderSettings
from services.transcoder.work_dirs import remove_orphaned_job_dirs
from shared.app_factory import new_service_app
from shared.keys import BROKER, METRICS_REGISTRY, STORAGE
from shared.lifecycle import broker_context, storage_context

SERVICE = "transcoder"


def media_settings(settings: TranscoderSettings) -> MediaSettings:
    return MediaSettings(
        limits=MediaLimits(
            max_duration_seconds=settings.media_max_duration_seconds,
            max_width=settings.media_max_width,
            max_height=settings.media_max_height,
        ),
        profile=PlaybackProfile(
            max_height=settings.playback_max_height,
            crf=settings.playback_crf,
            preset=settings.playback_preset,
        ),
        ladder_heights=settings.ladder_heights,
        thumbnail_max_width=settings.thumbnail_max_width,
        work_dir=settings.work_dir,
    )


def create_app(settings: TranscoderSettings) -> web.Application:
    app = new_service_app(settings, errors={})
    app.cleanup_ctx.append(storage_context(settings))
    app.cleanup_ctx.append(broker_context(settings, SERVICE))

    async def worker(app: web.Application) -> AsyncIterator[None]:
        # What a killed worker left in the work directory goes before new jobs arrive.
        await asyncio.to_thread(remove_orphaned_job_dirs, settings.work_dir)
        # One media job at a time per process (prefetch 1, one thread).
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="media")
        jobs = MediaJobs(app[STORAGE], executor, media_settings(settings))
        broker = app[BROKER]
        metrics = JobMetrics(app[METRICS_REGISTRY])
        await broker.consume(
            job_subscription(jobs, broker, metrics, delivery_limit=settings.job_delivery_limit)
        )
        yield
        # Finish (or give back) the current job before its executor goes away.
        await broker.stop_consuming(settings.shutdown_grace_seconds)
        executor.shutdown(wait=False, cancel_futures=True)

    app.cleanup_ctx.append(worker)
    return app
