"""The trimmed clip: `[start, start + duration)` of an upload, frame-accurately, as the
same H.264/AAC `+faststart` MP4 the playback transcode writes.

Decisions:
- Frame-accurate means: the first output frame is the source frame shown at `start` (the
  last one whose timestamp is at or before it), shown from zero; later frames keep their
  distance from `start` and the last one is cut short at the span's end, so the clip
  lasts exactly `duration` and a start between two frames costs one extra frame. Audio
  is cut at the same instants, to the sample, so picture and sound stay in sync.
- Fast: the demuxer seeks to the video keyframe at or before `start` and decoding starts
  there, never at the beginning of the file, and stops at the span's end. Demuxers seek
  by different clocks (MP4 and Matroska find the keyframe by its presentation time,
  some by its decoding time, which B-frames put earlier, and MPEG-TS lands wherever its
  packets are), so the keyframe the seek lands on is checked first, on a separate opening of the
  file, and the seek is stepped back while it is shown after `start`. A file that cannot
  seek at all is decoded from its beginning: slower, same clip.
- A span running past the end of the video is clipped to it; a start at or past the end
  is refused ("start is beyond the end of the video"), as is a span shorter than one
  frame at the source's average rate ("the span is shorter than one frame"), before
  any work. The video's end is where its data ends (`MediaInfo.video_end_seconds`):
  `probe` refuses a file whose data stops short of what its container claims, so a
  clip is never silently shorter than a span the file claims to hold.
- Packets that do not decode are left out, as in the playback transcode (a few at most;
  more is "video data is corrupt"): the frame before shows on, the decoder conceals
  what referred to them, and `CutResult.dropped_packets` says how many.
- Audio decoders need a little input before the first sample they must get right, so
  when there is audio the keyframe sought is the one at or before `start - 0.1 s`: a
  start just after a keyframe decodes one group of pictures more.
- Everything is re-encoded by the cut lanes (`lanes.py`), which encode as the playback
  transcode does: upright, within the profile's height, libx264 + AAC. `smart_cut.py`
  copies the source's whole groups of pictures where it safely can, and falls back to
  this cut where it cannot.
  Audio running on past the last picture is cut at the span's end, not at the video's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from services.transcoder.media.errors import (
    BEYOND_END,
    NO_VIDEO,
    SPAN_TOO_SHORT,
    VIDEO_CORRUPT,
    MediaRejected,
    is_environment_error,
    rejected_as,
)
from services.transcoder.media.lanes import (
    CutAudioLane,
    CutVideoLane,
    PlaybackProfile,
    Span,
    encode_lanes,
    own_audio_stream,
    playback_container,
    removed_on_failure,
)
from services.transcoder.media.probe import (
    MediaInfo,
    frame_seconds,
    open_source,
    video_stream_of,
)
from services.transcoder.media.progress import Meter, Progress

#: Seeks tried, each further back (by up to 2**(steps - 2) s), to land on a keyframe
#: shown at or before the start.
_MAX_SEEK_STEPS = 8
#: Audio decoders need some packets before the start to get the first samples right
#: (AAC overlaps frames of 1024 samples, Opus asks for 80 ms): the seek goes this much
#: earlier when there is audio. MP4 positions the audio where the video keyframe is.
_AUDIO_PREROLL_SECONDS = 0.1
#: Video packets read after a seek while looking for the keyframe it landed on.
_MAX_PACKETS_TO_KEYFRAME = 1000


@dataclass(frozen=True)
class CutResult:
    #: The clip's real length: from its first frame's start to its last frame's end
    #: (less than asked when the span ran past the end of the video).
    duration_seconds: float
    #: Video frames written.
    frames: int
    has_audio: bool
    #: Video frames decoded to make the clip: from the keyframe before the start, not
    #: from the beginning of the file.
    decoded_frames: int
    #: Source packets left out because they did not decode.
    dropped_packets: int
    #: When the first frame shows in the source, in seconds from the video's beginning
    #: (at or less than one frame before the start asked for).
    actual_start: float
    #: The clip's real length in seconds (as `duration_seconds`).
    actual_duration: float
    #: "smart" (the source's whole groups of pictures copied, the edges re-encoded) or
    #: "reencode" (every frame re-encoded).
    method: str = "reencode"
    #: Why a smart cut was not possible, when `method` is "reencode" for that reason.
    reencode_reason: str | None = None
    #: Source video packets copied untouched.
    copied_packets: int = 0


def cut(
    src: Path,
    dst: Path,
    start_seconds: float,
    duration_seconds: float,
    info: MediaInfo,
    profile: PlaybackProfile,
    progress: Progress | None = None,
) -> CutResult:
    """Write `[start, start + duration)` of the video at `src` (probed as `info`) to `dst`.

    Raises `MediaRejected` with the human-readable reason when the span or the media
    cannot be cut; `dst` is removed then. Times are seconds from the video's beginning.
    `progress`: the video packets decoded, by their time across the span.
    """
    check_span(start_seconds, duration_seconds, info)
    seek_target = seek_target_for(src, start_seconds, info)
    with (
        removed_on_failure(dst),
        open_source(src) as source,
        own_audio_stream(src, info, seek_target) as audio,
    ):
        video = video_stream_of(source)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        origin = (source.start_time or 0) / av.time_base
        span = Span(start=origin + start_seconds, end=origin + start_seconds + duration_seconds)
        meter = Meter(progress, span.start, span.end)
        if seek_target is not None:
            with rejected_as(VIDEO_CORRUPT):  # it worked a moment ago, on the same file
                source.seek(seek_target, stream=video, backward=True)
        with playback_container(dst) as output:
            video_lane = CutVideoLane(
                video, span, output, info, profile, from_keyframe=seek_target is not None
            )
            audio_lane = CutAudioLane(audio, span, output, profile) if audio else None
            dropped = encode_lanes(source, video_lane, audio_lane, meter.at)
    meter.done()
    first = video_lane.first_frame_seconds
    return CutResult(
        duration_seconds=video_lane.duration_seconds,
        frames=video_lane.frames,
        has_audio=audio_lane is not None and audio_lane.samples > 0,
        decoded_frames=video_lane.decoded_frames,
        dropped_packets=dropped,
        actual_start=max(0.0, (span.start if first is None else first) - origin),
        actual_duration=video_lane.duration_seconds,
    )


def check_span(start_seconds: float, duration_seconds: float, info: MediaInfo) -> None:
    """Refuse a span that cannot be cut from the video probed as `info`: ValueError for
    times that are no times, `MediaRejected` for a span shorter than a frame or starting
    past the end."""
    if not (math.isfinite(start_seconds) and start_seconds >= 0):
        raise ValueError(f"start must be a time in the video, not {start_seconds}")
    if not (math.isfinite(duration_seconds) and duration_seconds > 0):
        raise ValueError(f"duration must be positive, not {duration_seconds}")
    if duration_seconds < frame_seconds(info.frame_rate):
        raise MediaRejected(SPAN_TOO_SHORT)
    if start_seconds >= min(info.duration_seconds, info.video_end_seconds):
        raise MediaRejected(BEYOND_END)


def seek_target_for(src: Path, start_seconds: float, info: MediaInfo) -> int | None:
    """Where to seek (video time base) to decode the frame shown at `start_seconds` and
    the audio just before it; None: decode from the beginning."""
    preroll = _AUDIO_PREROLL_SECONDS if info.audio_codec else 0.0
    return _keyframe_seek_target(src, max(0.0, start_seconds - preroll))


def _keyframe_seek_target(src: Path, seconds: float) -> int | None:
    """The seek position (video time base) that lands on a keyframe shown at or before
    `seconds` into the video, or None when seeking does not get there (decode from the
    beginning then).

    The seek is tried at `seconds`, then from just before the keyframe it landed on
    (demuxers that seek by decoding time), then ever further back (MPEG-TS lands past
    the keyframe it needs). Found on its own opening of the file, so the real pass
    starts from a fresh demuxer.
    """
    with open_source(src) as source:
        video = video_stream_of(source)
        if video is None or video.time_base is None:
            return None
        origin = (source.start_time or 0) / av.time_base
        wanted = round((origin + seconds) / video.time_base)
        first = (
            video.start_time if video.start_time is not None else round(origin / video.time_base)
        )
        target = wanted
        for step in range(_MAX_SEEK_STEPS):
            keyframe = _keyframe_after_seek(source, video, target)
            if keyframe is None:
                return None
            pts, dts = keyframe
            if pts <= first or target <= first:
                # The first keyframe: reading from the beginning is no slower, and keeps
                # what comes before it (AAC's priming packet).
                return None
            if pts <= wanted:
                return target
            back = 1 if step == 0 else round((1 << (step - 1)) / video.time_base)
            target = min(target, dts) - back
        return None


def _keyframe_after_seek(
    source: InputContainer, video: VideoStream, target: int
) -> tuple[int, int] | None:
    """Seek to `target` and return (pts, dts) of the first video keyframe read from
    there; None if FFmpeg cannot seek or finds none soon."""
    try:
        source.seek(target, stream=video, backward=True)
        for count, packet in enumerate(source.demux(video)):
            if count >= _MAX_PACKETS_TO_KEYFRAME:
                break
            if packet.is_keyframe and packet.pts is not None:
                return packet.pts, packet.pts if packet.dts is None else packet.dts
    except av.FFmpegError as exc:
        if is_environment_error(exc):
            raise
    return None
