"""Why the transcoder refuses an upload: `MediaRejected`, the reasons users see with their
machine-readable codes (`_CODES`, one row per reason), and the one place where FFmpeg's
errors become those reasons (`rejected_as`, `TolerantDecoder`).

An upload is rejected for good (the worker reports `video.failed`, nothing retries) when
its bytes are the problem. Errors of the machine running the job are not the upload's
fault and are not turned into `MediaRejected`: a missing or unreadable local file, a full
disk or too many open files propagate as the `OSError` they are (PyAV's error
classes for them subclass `OSError`), so the worker can retry the job.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import av
from av.audio.frame import AudioFrame
from av.packet import Packet
from av.video.frame import VideoFrame

from shared.events import FailureCode

#: Undecodable packets a stream may have before it is called corrupt.
MAX_DECODE_ERRORS = 10

_FrameT = TypeVar("_FrameT", VideoFrame, AudioFrame)

# The reasons, exactly as the API shows them in `failure_reason`.
NOT_MEDIA = "file is not a media file"
NO_VIDEO = "no video stream"
TOO_LONG = "video longer than the limit"
TOO_LARGE = "resolution above the limit"
VIDEO_CORRUPT = "video data is corrupt"
AUDIO_CORRUPT = "audio data is corrupt"
TRUNCATED = "video data is truncated"
ENCODING_FAILED = "the video could not be converted for playback"
BEYOND_END = "start is beyond the end of the video"
SPAN_TOO_SHORT = "the span is shorter than one frame"

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


#: The machine-readable code of each reason.
_CODES = {
    NOT_MEDIA: FailureCode.NOT_MEDIA,
    NO_VIDEO: FailureCode.NO_VIDEO_STREAM,
    TOO_LONG: FailureCode.TOO_LONG,
    TOO_LARGE: FailureCode.RESOLUTION_TOO_HIGH,
    VIDEO_CORRUPT: FailureCode.CORRUPT_MEDIA,
    AUDIO_CORRUPT: FailureCode.CORRUPT_MEDIA,
    TRUNCATED: FailureCode.CORRUPT_MEDIA,
    ENCODING_FAILED: FailureCode.UNSUPPORTED_CODEC,
    BEYOND_END: FailureCode.START_BEYOND_END,
    SPAN_TOO_SHORT: FailureCode.SPAN_TOO_SHORT,
}


class MediaRejected(Exception):
    """The upload cannot be processed; `str(exc)` is the human-readable failure reason,
    `code` the machine-readable one."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = _CODES[reason]


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


class TolerantDecoder(Generic[_FrameT]):
    """A stream's decoder that skips a few undecodable packets, as the `ffmpeg` tool does,
    before calling the stream corrupt (`corrupt` is the reason then); `dropped` counts the
    packets skipped. With `max_errors=0` it is strict: the first error is the rejection."""

    def __init__(
        self,
        decode: Callable[[Packet[Any] | None], list[_FrameT]],
        corrupt: str,
        max_errors: int = MAX_DECODE_ERRORS,
    ) -> None:
        self._decode: Callable[[Packet[Any] | None], list[_FrameT]] = decode
        self._corrupt = corrupt
        self._max_errors = max_errors
        self._errors = 0

    def __call__(self, packet: Packet[Any] | None) -> list[_FrameT]:
        try:
            return self._decode(packet)
        except av.FFmpegError as exc:
            if is_environment_error(exc):
                raise
            self._errors += 1
            if self._errors > self._max_errors:
                raise MediaRejected(self._corrupt) from exc
            return []

    @property
    def dropped(self) -> int:
        """Packets that did not decode and were left out."""
        return self._errors
