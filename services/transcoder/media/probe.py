"""What an upload is: `probe` reads its container and stream metadata, enforces the
limits, reads its packets through once, and describes it as a `MediaInfo`.

`probe` is the one judge of the file for both paths: hosting (`pipeline.prepare_media`)
and trimming (`pipeline.cut_clip`, or the worker's stored probe of the source) run it
first, so a file is refused by both for the same reason, with the same code.

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
- Truncation, judged by time, never by counting: the video and audio packets are read
  through once without decoding (`_read_through`: about 0.04 s for a minute of 720p),
  and the file is "video data is truncated" when its data ends clearly before the end
  its container claims (`falls_short`): more than one frame (at the stream's average
  rate) plus `TRUNCATION_SLACK_SECONDS` short of it. The claimed end is the video
  stream's own duration where FFmpeg has one (MP4/MOV tracks, AVI headers), compared
  with where the video's last frame stops showing; otherwise the container's duration
  (Matroska/WebM, FLV), which covers every stream, compared with where the last video
  or audio packet ends (so a video track shorter than its audio is no truncation). A
  packet the demuxer flags corrupt (cut short by the end of the file) does not count
  as there. Frame counts in headers are hints, not contracts (an AVI made by FFmpeg
  says 76 frames and holds 75 packets, 3.04 s of pictures).
  So an MP4 cut short but keeping its `moov` (written with `+faststart`) is refused by
  both paths, whatever span a trim asks for: a clip is never silently shorter than a
  span the file claims to hold. One whose `moov` was cut off cannot be opened: "file
  is not a media file". Where FFmpeg measures the duration from the packets themselves
  (MPEG-TS, MPEG-PS) there is no claim to fall short of: a truncated file is a shorter
  video.
- Data running on past the duration limit, whatever the header claims, is "video longer
  than the limit"; the read-through stops there.
- A file whose header states no duration at all (WebM recorded by a browser's
  MediaRecorder, Matroska written live) lasts as long as its data: the read-through
  measures it. Without a timed packet it is "file is not a media file".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition, Stream
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from services.transcoder.media.errors import (
    NO_VIDEO,
    NOT_MEDIA,
    TOO_LARGE,
    TOO_LONG,
    TRUNCATED,
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
    "falls_short",
    "frame_seconds",
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
#: How much earlier than claimed, beyond one frame, a file's data may end and still be
#: whole: container durations are rounded, audio priming and a FLV's start offset move
#: them by tens of milliseconds.
TRUNCATION_SLACK_SECONDS = 0.1
#: The frame rate assumed for a video stream that declares none.
_FALLBACK_FRAME_RATE = 25


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
    #: Where the last video frame stops showing, in seconds from the start of the file's
    #: timeline (as `duration_seconds`): read from the packets, not from the header.
    video_end_seconds: float


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
        if duration is not None and duration > limits.max_duration_seconds:
            raise MediaRejected(TOO_LONG)
        width, height = video.codec_context.width, video.codec_context.height
        if width <= 0 or height <= 0:
            raise MediaRejected(NOT_MEDIA)
        if max(width, height) > max(limits.max_width, limits.max_height) or min(
            width, height
        ) > min(limits.max_width, limits.max_height):
            raise MediaRejected(TOO_LARGE)

        audio = audio_stream_of(container)
        origin = (container.start_time or 0) / av.time_base
        data = _read_through(container, video, audio, origin + limits.max_duration_seconds)
        if data.end is not None and data.end - origin > limits.max_duration_seconds:
            raise MediaRejected(TOO_LONG)
        if duration is None:
            # No duration in the header (a browser's MediaRecorder writes WebM so): the
            # data's own. Without timed packets nothing can be measured or listed.
            if data.end is None:
                raise MediaRejected(NOT_MEDIA)
            duration = data.end - origin
        if _truncated(container, video, data):
            raise MediaRejected(TRUNCATED)
        first = data.first_frame
        if first is None:
            raise MediaRejected(VIDEO_CORRUPT)
        # Untimed video packets tell no end: the claim stands then.
        video_end = origin + duration if data.video_end is None else data.video_end
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
            video_end_seconds=video_end - origin,
        )


def falls_short(data_end: float, claimed_end: float, frame: float) -> bool:
    """The truncation rule: data ending more than a frame and the slack before the end
    its container claims is missing its tail. Times in seconds of the same timeline."""
    return data_end < claimed_end - frame - TRUNCATION_SLACK_SECONDS


def frame_seconds(rate: Fraction | float | None) -> float:
    """How long one frame shows at `rate` frames a second (a stream's average rate, or
    `MediaInfo.frame_rate`); 1/25 s when the stream declares none."""
    return 1 / float(rate or _FALLBACK_FRAME_RATE)


def media_duration(container: InputContainer, video: VideoStream) -> float | None:
    """The container's duration in seconds, else the video stream's; None if neither."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    return None


@dataclass(frozen=True)
class _DataRead:
    """What `_read_through` found, in seconds of the file's timeline."""

    #: The first video frame that decodes; None if none did soon enough.
    first_frame: VideoFrame | None
    video_packets: int
    #: Where the last video frame stops showing; None without a timed video packet.
    video_end: float | None
    #: Where the last video or audio packet ends.
    end: float | None


def _read_through(
    container: InputContainer, video: VideoStream, audio: AudioStream | None, stop_at: float
) -> _DataRead:
    """Demux the video and audio packets to the end (or past `stop_at`), decoding only
    until the first video frame: where the data really ends, and that it decodes."""
    decode = TolerantDecoder(video.decode, VIDEO_CORRUPT)
    first: VideoFrame | None = None
    video_packets = 0
    streams: list[Stream] = [video] if audio is None else [video, audio]
    # Ends are kept in each stream's own ticks: integers, where a `Fraction` per packet
    # would cost more than the demuxing itself.
    time_bases = {s.index: s.time_base for s in streams if s.time_base is not None}
    stop_ticks = {index: stop_at / base for index, base in time_bases.items()}
    untimed_ticks = {index: 0 for index in time_bases}  # a packet that says no duration
    if video.index in time_bases:
        one_frame = frame_seconds(video.average_rate or video.guessed_rate)
        untimed_ticks[video.index] = round(one_frame / time_bases[video.index])
    end_ticks: dict[int, int] = {}
    with rejected_as(VIDEO_CORRUPT):
        for packet in container.demux(streams):
            index = packet.stream_index
            if packet.size == 0:  # the end-of-stream marker
                continue
            if index == video.index:
                video_packets += 1
                if first is None and video_packets <= _FIRST_FRAME_MAX_PACKETS:
                    first = next(iter(decode(packet)), None)
            start = packet.dts if packet.pts is None else packet.pts
            if start is None or packet.is_corrupt or index not in time_bases:
                continue
            end = start + (packet.duration or untimed_ticks[index])
            end_ticks[index] = max(end, end_ticks.get(index, end))
            if end > stop_ticks[index]:
                break
    ends = {index: float(ticks * time_bases[index]) for index, ticks in end_ticks.items()}
    return _DataRead(
        first_frame=first,
        video_packets=video_packets,
        video_end=ends.get(video.index),
        end=max(ends.values()) if ends else None,
    )


def _truncated(container: InputContainer, video: VideoStream, data: _DataRead) -> bool:
    """`falls_short` applied to the end the container claims and the data's end (see the
    module's decisions)."""
    if data.video_packets > 0 and data.video_end is None:
        return False  # untimed packets: nothing to hold the claim to
    if video.duration is not None and video.duration > 0 and video.time_base is not None:
        start = float((video.start_time or 0) * video.time_base)
        claimed = start + float(video.duration * video.time_base)
        real = start if data.video_end is None else data.video_end
    else:
        start = (container.start_time or 0) / av.time_base
        claimed = start + (container.duration or 0) / av.time_base
        real = start if data.end is None else data.end
    return falls_short(real, claimed, frame_seconds(video.average_rate or video.guessed_rate))
