"""Typed application keys of the transcoder."""

from __future__ import annotations

from aiohttp import web

from services.transcoder.service import MediaJobs

MEDIA_JOBS: web.AppKey[MediaJobs] = web.AppKey("media_jobs", MediaJobs)
