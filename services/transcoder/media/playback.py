"""The web-playable file: an H.264/AAC MP4 with `moov` first (`+faststart`).

`write_playback` copies the upload's packets into a new MP4 when a browser can already
play them (`remux`) and re-encodes otherwise (`transcode`, which runs the whole-stream
lanes of `lanes.py`).

Decisions:
- The playback file decodes cleanly, whichever way it was made. Copying packets checks
  nothing, so `remux` decodes every video and audio packet it copies and gives up at the
  first one that does not decode; the transcode then takes over, leaving such packets
  out (a few at most: `errors.MAX_DECODE_ERRORS`, more is "video data is corrupt"), and
  `Playback.dropped_packets` says how many. The check costs a decode of the source:
  on two shared cores, 1.5-3.5 s for a minute of 720p H.264 where the copy alone takes
  0.1 s, and 1.4 s for 30 s of 1080p that a transcode takes 18 s over. The loop filter
  is skipped for it: deblocking cannot fail, so the check sees the same errors, 10-40 %
  sooner (CABAC sources gain most).
- Whether the source is whole is `probe`'s judgement, made before: a truncated file
  never gets here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from av.audio.frame import AudioFrame
from av.stream import Stream
from av.video.frame import VideoFrame

from services.transcoder.media.errors import (
    AUDIO_CORRUPT,
    ENCODING_FAILED,
    NO_VIDEO,
    VIDEO_CORRUPT,
    MediaRejected,
    TolerantDecoder,
    rejected_as,
)
from services.transcoder.media.lanes import (
    FASTSTART,
    PlaybackProfile,
    WholeAudioLane,
    WholeVideoLane,
    demuxed,
    encode_lanes,
    own_audio_stream,
    packet_seconds,
    playback_container,
    removed_on_failure,
)
from services.transcoder.media.probe import (
    MediaInfo,
    audio_stream_of,
    media_duration,
    open_source,
    video_stream_of,
)
from services.transcoder.media.progress import Meter, Progress, rising

_REMUXABLE_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p"})
#: Demuxer names (in FFmpeg's comma-separated list) of the MP4/QuickTime family.
_MP4_FAMILY = frozenset({"mov", "mp4"})
#: Decoder options of the check `remux` runs: only whether packets decode matters.
_CHECK_DECODER_OPTIONS = {"skip_loop_filter": "all"}


@dataclass(frozen=True)
class Playback:
    #: The packets were copied (True) or re-encoded (False).
    remuxed: bool
    #: Source packets left out because they did not decode (0 when remuxed).
    dropped_packets: int


def needs_transcode(info: MediaInfo, profile: PlaybackProfile) -> bool:
    """False when the upload's own packets play in a browser as an MP4 (remux is enough)."""
    playable = (
        info.video_codec == "h264"
        and info.pixel_format in _REMUXABLE_PIXEL_FORMATS
        and info.audio_codec in (None, "aac")
        and not _MP4_FAMILY.isdisjoint(info.container.split(","))
        and info.height <= profile.max_height
        and info.width % 2 == 0
        and info.height % 2 == 0
        and info.rotation == 0
    )
    return not playable


def write_playback(
    src: Path,
    dst: Path,
    info: MediaInfo,
    profile: PlaybackProfile,
    progress: Progress | None = None,
) -> Playback:
    """Write the playback MP4, by copying the packets when they play as they are and
    decode cleanly, else by re-encoding.

    A remux the MP4 muxer refuses (odd timestamps, a codec tag it does not accept) or
    whose packets do not all decode falls back to a transcode. `progress` is told how
    far it got (`progress.py`); the transcode after a refused remux goes on from where
    the remux stopped.
    """
    if progress is not None:
        progress = rising(progress)
    if not needs_transcode(info, profile):
        try:
            remux(src, dst, progress)
        except MediaRejected:
            pass  # the transcode decides what the source is worth
        else:
            return Playback(remuxed=True, dropped_packets=0)
    dropped = transcode(src, dst, info, profile, progress)
    return Playback(remuxed=False, dropped_packets=dropped)


def make_playback(
    src: Path,
    dst: Path,
    info: MediaInfo,
    profile: PlaybackProfile,
    progress: Progress | None = None,
) -> bool:
    """`write_playback`, for callers that only ask whether the packets were copied."""
    return write_playback(src, dst, info, profile, progress).remuxed


def remux(
    src: Path,
    dst: Path,
    progress: Progress | None = None,
    *,
    movflags: str = FASTSTART,
    check: bool = True,
) -> None:
    """Copy the video and audio packets into an MP4 written with `movflags` (by default
    `+faststart`; the ladder's renditions are fragmented), no re-encoding, decoding each
    on the way: the first that does not decode is "video data is corrupt" (or audio),
    and `dst` is removed. `check=False` copies without decoding, for a caller that
    decodes the source anyway afterwards (the ladder's other rungs).

    Timestamps are shifted to start at zero, as the transcode's are (so a copied rung
    and the encoded ones share one timeline). `progress`: the video packets copied, by
    their time against the source's duration.
    """
    with removed_on_failure(dst), open_source(src) as source:
        video = video_stream_of(source)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        audio = audio_stream_of(source)
        inputs: list[Stream] = [video] if audio is None else [video, audio]
        start = (source.start_time or 0) / av.time_base
        shifts = {s.index: round(start / s.time_base) if s.time_base else 0 for s in inputs}
        meter = Meter(progress, start, start + (media_duration(source, video) or 0.0))
        video.codec_context.thread_type = "AUTO"
        video.codec_context.options = _CHECK_DECODER_OPTIONS
        checks: dict[int, TolerantDecoder[Any]] = {}
        if check:
            checks[video.index] = TolerantDecoder[VideoFrame](
                video.decode, VIDEO_CORRUPT, max_errors=0
            )
            if audio is not None:
                checks[audio.index] = TolerantDecoder[AudioFrame](
                    audio.decode, AUDIO_CORRUPT, max_errors=0
                )
        with playback_container(dst, movflags) as output:
            with rejected_as(ENCODING_FAILED):
                targets = {s.index: output.add_stream_from_template(s) for s in inputs}
            for packet in demuxed(source, inputs):
                if packet.dts is None:  # the empty packet that marks a stream's end
                    continue
                # Before muxing: the muxer takes the packet over to the output stream.
                if verify := checks.get(packet.stream_index):
                    verify(packet)
                seconds = packet_seconds(packet) if packet.stream_index == video.index else None
                shift = shifts[packet.stream_index]
                packet.dts -= shift
                if packet.pts is not None:
                    packet.pts -= shift
                packet.stream = targets[packet.stream_index]
                with rejected_as(ENCODING_FAILED):
                    output.mux(packet)
                if seconds is not None:
                    meter.at(seconds)
            for verify in checks.values():
                verify(None)  # frames still in the decoder (frame threads) are checked too
    meter.done()


def transcode(
    src: Path,
    dst: Path,
    info: MediaInfo,
    profile: PlaybackProfile,
    progress: Progress | None = None,
) -> int:
    """Re-encode to H.264 (libx264, yuv420p) and AAC in an MP4 with `+faststart`; return
    the source packets left out because they did not decode.

    The picture is turned upright (the output carries no rotation), scaled down to at
    most `profile.max_height` keeping its aspect, with even sides. Timestamps are the
    source's, shifted to start at zero. `progress`: the video packets decoded, by their
    time against the probed duration.
    """
    with removed_on_failure(dst), open_source(src) as source, own_audio_stream(src, info) as audio:
        video = video_stream_of(source)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        start = (source.start_time or 0) / av.time_base
        meter = Meter(progress, start, start + info.duration_seconds)
        with playback_container(dst) as output:
            video_lane = WholeVideoLane(video, start, output, info, profile)
            audio_lane = WholeAudioLane(audio, start, output, profile) if audio else None
            dropped = encode_lanes(source, video_lane, audio_lane, meter.at)
    meter.done()
    return dropped
