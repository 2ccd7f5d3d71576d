"""Why the transcoder refuses an upload: `MediaRejected`, the reasons users see, and the
one place where FFmpeg's errors become those reasons.

An upload is rejected for good (the worker reports `video.failed`, nothing retries) when
its bytes are the problem. Errors of the machine running the job are not the upload's
fault and are not turned into `MediaRejected`: a missing or unreadable local file, a full
disk or too many open files propagate as the `OSError` they are (PyAV's error
classes for them subclass `OSError`), so the worker can retry the job.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

import av

# The reasons, exactly as the API shows them in `failure_reason`.
NOT_MEDIA = "file is not a media file"
NO_VIDEO = "no video stream"
TOO_LONG = "video longer than the limit"
TOO_LARGE = "resolution above the limit"
VIDEO_CORRUPT = "video data is corrupt"
AUDIO_CORRUPT = "audio data is corrupt"
TRUNCATED = "video data is truncated"
ENCODING_FAILED = "the video could not be converted for playback"

#: errno values that describe the machine, not the media.
_ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EMFILE,
        errno.ENFILE,
    }
)


class MediaRejected(Exception):
    """The upload cannot be processed; `str(exc)` is the human-readable failure reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_environment_error(exc: BaseException) -> bool:
    """True for failures of the machine (disk, permissions, memory), not of the media."""
    return isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS


@contextmanager
def rejected_as(reason: str) -> Iterator[None]:
    """Turn an FFmpeg error raised inside the block into `MediaRejected(reason)`."""
    try:
        yield
    except av.FFmpegError as exc:
        if is_environment_error(exc):
            raise
        raise MediaRejected(reason) from exc
