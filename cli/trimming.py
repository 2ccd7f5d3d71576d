"""Trimming from the command line: upload a source with its span, follow the request."""

from __future__ import annotations

import mimetypes
import time
from pathlib import Path

from cli.client import KinoClient
from cli.errors import KinoError
from cli.multipart import OnSent
from cli.progress import JobReport
from cli.schemas import Clip, TrimRequest

#: Seconds between two looks at a request's state.
POLL_SECONDS = 0.5


def request_trim(
    client: KinoClient, path: Path, *, name: str, start: float, duration: float, on_sent: OnSent
) -> str:
    """Upload the source with the span to cut; returns the video's id."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return client.create_trim(
        path, content_type, name=name, start=start, duration=duration, on_sent=on_sent
    )


def _state(request: TrimRequest) -> str:
    eta = request.attributes.eta_seconds
    return request.attributes.status + (f", about {eta:.0f} s left" if eta else "")


def wait_for_clip(client: KinoClient, video_id: str, report: JobReport) -> Clip:
    """Poll until the clip of `video_id` is listed; its request's failure is a `KinoError`.

    The API does not link a request to its video (the relationship carries no id), so
    the request followed for progress and failure is the newest one listed right after
    the upload was answered (requests come newest first): this upload's, unless the
    same account uploaded another in between. That the clip is done is decided by the
    video id alone.
    """
    listed = client.trim_requests()
    if not listed:
        raise KinoError("the trim request of this upload is not listed")
    request_id = listed[0].id
    while True:
        for clip in client.clips():
            if clip.id == video_id:
                report(1.0, "done")
                return clip
        request = next((item for item in client.trim_requests() if item.id == request_id), None)
        if request is None:
            raise KinoError(f"trim request {request_id} is no longer listed")
        if request.attributes.status == "failed":
            reason = request.attributes.failure_reason or "no reason given"
            raise KinoError(f"trim request {request_id} failed: {reason}")
        report(request.attributes.progress, _state(request))
        time.sleep(POLL_SECONDS)
