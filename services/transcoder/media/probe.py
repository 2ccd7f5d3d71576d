"""What an upload is: `probe` reads its container and stream metadata, enforces the
limits, and describes it as a `MediaInfo`.

Decisions:
- Limits (duration, resolution) are checked from container and stream metadata before
  anything is decoded. Resolution is checked independently of orientation: the longer
  coded side against the larger limit, the shorter against the smaller, so a portrait
  phone video passes the same limits as its landscape twin.
- A still image (JPEG, PNG, WebP... read by FFmpeg's image demuxers) and cover art
  attached to an audio file are not playable videos: "no video stream". An animated GIF
  counts as a video. Plain text, which FFmpeg would read as ANSI art, is "file is not a
  media file".
- Rotation is stored in the container (the MP4/MOV track matrix), which PyAV 18 exposes
  only on decoded frames (`VideoFrame.rotation`, counter-clockwise degrees), not on the
  stream. So after the limits pass, `probe` decodes the first video frame: that reads the
  rotation and proves the video data decodes at all.
- A truncated MP4 whose `moov` atom was cut off cannot be opened: "file is not a media
  file". One that keeps its `moov` (written with `+faststart`) but lost media data
  probes fine when its first frame survives; `remux`/`transcode` then reject it as
  "video data is truncated" (fewer packets than the index lists).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from services.transcoder.media.errors import (
    NO_VIDEO,
    NOT_MEDIA,
    TOO_LARGE,
    TOO_LONG,
    VIDEO_CORRUPT,
    MediaRejected,
    TolerantDecoder,
    is_environment_error,
    rejected_as,
)

__all__ = [
    "MediaInfo",
    "MediaLimits",
    "MediaRejected",
    "audio_stream_of",
    "clockwise_rotation",
    "media_duration",
    "open_source",
    "probe",
    "video_stream_of",
]

#: Demuxers whose "video" is a still picture, never a playable video.
_STILL_DEMUXERS = frozenset({"image2"})
#: FFmpeg reads any text as ANSI art ("tty"): that is no media file either.
_TEXT_DEMUXERS = frozenset({"tty"})
_STILL_DISPOSITIONS = Disposition.attached_pic | Disposition.still_image

#: How far `probe` reads for the first decodable frame before calling the video corrupt.
_FIRST_FRAME_MAX_PACKETS = 300


@dataclass(frozen=True)
class MediaLimits:
    max_duration_seconds: float
    max_width: int
    max_height: int


@dataclass(frozen=True)
class MediaInfo:
    duration_seconds: float
    #: The demuxer's name(s) as FFmpeg reports them, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
    container: str
    #: FFmpeg's codec name ("h264", "vp9", "av1"), not the decoder's ("libdav1d").
    video_codec: str
    #: Coded size, before rotation.
    width: int
    height: int
    #: Degrees to turn the picture clockwise to show it upright: 0, 90, 180 or 270.
    rotation: int
    pixel_format: str | None
    frame_rate: float | None
    #: None when there is no audio stream.
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None


@contextmanager
def open_source(path: Path) -> Iterator[InputContainer]:
    """Open a media file for reading; garbage becomes `MediaRejected("file is not ...")`."""
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as exc:
        if is_environment_error(exc):
            raise
        raise MediaRejected(NOT_MEDIA) from exc
    with container:
        if container.format.name in _TEXT_DEMUXERS:
            raise MediaRejected(NOT_MEDIA)
        yield container


def video_stream_of(container: InputContainer) -> VideoStream | None:
    """The video stream Kino plays: the first one that is not a still picture."""
    if container.format.name in _STILL_DEMUXERS or container.format.name.endswith("_pipe"):
        return None
    for stream in container.streams.video:
        if stream.disposition & _STILL_DISPOSITIONS:
            continue
        if stream.codec_context is None:
            continue
        return stream
    return None


def audio_stream_of(container: InputContainer) -> AudioStream | None:
    """The audio stream Kino keeps: the first one FFmpeg can decode."""
    for stream in container.streams.audio:
        if stream.codec_context is not None and stream.codec_context.sample_rate > 0:
            return stream
    return None


def clockwise_rotation(frame: VideoFrame) -> int:
    """The frame's display rotation as clockwise degrees, snapped to a quarter turn.

    `VideoFrame.rotation` is FFmpeg's `av_display_rotation_get`: counter-clockwise.
    """
    clockwise = -frame.rotation % 360
    return (clockwise + 45) // 90 * 90 % 360


def probe(path: Path, limits: MediaLimits) -> MediaInfo:
    """Describe the upload at `path`, or raise `MediaRejected` with the reason."""
    with open_source(path) as container:
        video = video_stream_of(container)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        duration = media_duration(container, video)
        if duration is None:
            # No duration at all, not even FFmpeg's estimate: nothing FFmpeg can measure
            # is a video we could list, and its length limit cannot be enforced.
            raise MediaRejected(NOT_MEDIA)
        if duration > limits.max_duration_seconds:
            raise MediaRejected(TOO_LONG)
        width, height = video.codec_context.width, video.codec_context.height
        if width <= 0 or height <= 0:
            raise MediaRejected(NOT_MEDIA)
        if max(width, height) > max(limits.max_width, limits.max_height) or min(
            width, height
        ) > min(limits.max_width, limits.max_height):
            raise MediaRejected(TOO_LARGE)

        first = _first_frame(container, video)
        audio = audio_stream_of(container)
        rate = video.average_rate or video.guessed_rate
        return MediaInfo(
            duration_seconds=duration,
            container=container.format.name,
            video_codec=video.codec_context.codec.canonical_name,
            width=width,
            height=height,
            rotation=clockwise_rotation(first),
            pixel_format=video.codec_context.pix_fmt or first.format.name,
            frame_rate=float(rate) if rate else None,
            audio_codec=audio.codec_context.codec.canonical_name if audio else None,
            audio_sample_rate=audio.codec_context.sample_rate if audio else None,
            audio_channels=audio.codec_context.channels if audio else None,
        )


def media_duration(container: InputContainer, video: VideoStream) -> float | None:
    """The container's duration in seconds, else the video stream's; None if neither."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    return None


def _first_frame(container: InputContainer, video: VideoStream) -> VideoFrame:
    decode = TolerantDecoder(video.decode, VIDEO_CORRUPT)
    with rejected_as(VIDEO_CORRUPT):
        for packet in islice(container.demux(video), _FIRST_FRAME_MAX_PACKETS):
            if frames := decode(packet):
                return frames[0]
    raise MediaRejected(VIDEO_CORRUPT)
