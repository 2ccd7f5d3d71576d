"""The web-playable file: an H.264/AAC MP4 with `moov` first (`+faststart`).

`make_playback` copies the upload's packets into a new MP4 when a browser can already
play them (`remux`, seconds even for long videos) and re-encodes otherwise (`transcode`,
which runs the whole-stream lanes of `lanes.py`).

A source that lost data at its end (a truncated MP4 that kept its index) is rejected as
"video data is truncated" by both paths: they read fewer video packets than the
container's index lists. A container without an index (WebM, MPEG-TS) cannot tell, and a
truncated one of those simply gives a shorter video.
"""

from __future__ import annotations

from pathlib import Path

import av
from av.stream import Stream

from services.transcoder.media.errors import (
    ENCODING_FAILED,
    NO_VIDEO,
    TRUNCATED,
    MediaRejected,
    rejected_as,
)
from services.transcoder.media.lanes import (
    PlaybackProfile,
    WholeAudioLane,
    WholeVideoLane,
    check_complete,
    demuxed,
    encode_lanes,
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


def make_playback(
    src: Path,
    dst: Path,
    info: MediaInfo,
    profile: PlaybackProfile,
    progress: Progress | None = None,
) -> bool:
    """Write the playback MP4; True if the packets were copied, False if re-encoded.

    A remux the MP4 muxer refuses (odd timestamps, a codec tag it does not accept) falls
    back to a transcode; a truncated source fails either way and is not retried.
    `progress` is told how far it got (`progress.py`); the transcode after a refused
    remux goes on from where the remux stopped.
    """
    if progress is not None:
        progress = rising(progress)
    if not needs_transcode(info, profile):
        try:
            remux(src, dst, progress)
        except MediaRejected as exc:
            if exc.reason == TRUNCATED:
                raise
        else:
            return True
    transcode(src, dst, info, profile, progress)
    return False


def remux(src: Path, dst: Path, progress: Progress | None = None) -> None:
    """Copy the video and audio packets into an MP4 with `+faststart`, no re-encoding.

    `progress`: the video packets copied, by their time against the source's duration.
    """
    with removed_on_failure(dst), open_source(src) as source:
        video = video_stream_of(source)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        audio = audio_stream_of(source)
        inputs: list[Stream] = [video] if audio is None else [video, audio]
        start = (source.start_time or 0) / av.time_base
        meter = Meter(progress, start, start + (media_duration(source, video) or 0.0))
        with playback_container(dst) as output:
            with rejected_as(ENCODING_FAILED):
                targets = {s.index: output.add_stream_from_template(s) for s in inputs}
            video_packets = 0
            for packet in demuxed(source, inputs):
                if packet.dts is None:  # the empty packet that marks a stream's end
                    continue
                seconds = None
                if packet.stream_index == video.index:
                    video_packets += 1
                    seconds = packet_seconds(packet)
                packet.stream = targets[packet.stream_index]
                with rejected_as(ENCODING_FAILED):
                    output.mux(packet)
                if seconds is not None:
                    meter.at(seconds)
            check_complete(video, video_packets)
    meter.done()


def transcode(
    src: Path,
    dst: Path,
    info: MediaInfo,
    profile: PlaybackProfile,
    progress: Progress | None = None,
) -> None:
    """Re-encode to H.264 (libx264, yuv420p) and AAC in an MP4 with `+faststart`.

    The picture is turned upright (the output carries no rotation), scaled down to at
    most `profile.max_height` keeping its aspect, with even sides. Timestamps are the
    source's, shifted to start at zero. `progress`: the video packets decoded, by their
    time against the probed duration.
    """
    with removed_on_failure(dst), open_source(src) as source:
        video = video_stream_of(source)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        audio = audio_stream_of(source) if info.audio_codec else None
        start = (source.start_time or 0) / av.time_base
        meter = Meter(progress, start, start + info.duration_seconds)
        with playback_container(dst) as output:
            video_lane = WholeVideoLane(video, start, output, info, profile)
            audio_lane = WholeAudioLane(audio, start, output, profile) if audio else None
            encode_lanes(source, video_lane, audio_lane, meter.at)
    meter.done()
