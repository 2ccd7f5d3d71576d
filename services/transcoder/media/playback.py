"""The web-playable file: an H.264/AAC MP4 with `moov` first (`+faststart`).

`make_playback` copies the upload's packets into a new MP4 when a browser can already
play them (`remux`, seconds even for long videos) and re-encodes otherwise (`transcode`).

A source that lost data at its end (a truncated MP4 that kept its index) is rejected as
"video data is truncated" by both paths: they read fewer video packets than the
container's index lists. A container without an index (WebM, MPEG-TS) cannot tell, and a
truncated one of those simply gives a shorter video.

The lanes (`VideoLane`, `AudioLane`) and the output helpers are shared with `cut`, which
runs them over a `Span` of the source instead of all of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.filter import Graph
from av.filter.context import FilterContext
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from services.transcoder.media.errors import (
    AUDIO_CORRUPT,
    ENCODING_FAILED,
    NO_VIDEO,
    TRUNCATED,
    VIDEO_CORRUPT,
    MediaRejected,
    TolerantDecoder,
    rejected_as,
)
from services.transcoder.media.geometry import (
    FrameShaper,
    fit_within,
    pull_ready,
    upright_size,
)
from services.transcoder.media.probe import (
    MediaInfo,
    audio_stream_of,
    open_source,
    video_stream_of,
)

_REMUXABLE_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p"})
#: Demuxer names (in FFmpeg's comma-separated list) of the MP4/QuickTime family.
_MP4_FAMILY = frozenset({"mov", "mp4"})
_FASTSTART = {"movflags": "+faststart"}
#: The sample rates AAC signals directly; anything else is resampled to 48 kHz.
_AAC_SAMPLE_RATES = frozenset(
    {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000}
)
_AAC_FRAME_SAMPLES = 1024
#: Undecodable packets tolerated per stream (the `ffmpeg` tool skips them too) before
#: the upload counts as corrupt.
_FALLBACK_FRAME_RATE = Fraction(25)


@dataclass(frozen=True)
class PlaybackProfile:
    max_height: int = 1080
    crf: int = 23
    preset: str = "veryfast"
    audio_bitrate: int = 128_000
    #: Encoder and decoder threads; 0 lets FFmpeg pick one per core.
    threads: int = 0


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


@dataclass(frozen=True)
class Span:
    """What a lane writes, in seconds of the source's timeline (where its timestamps say).

    `start` becomes the output's zero. Without `end` every frame is written with its own
    timing (the playback transcode). With `end` the lane cuts `[start, end)`
    frame-accurately: the frame shown at `start` opens the output at zero, every later
    frame keeps its distance from `start`, frames shown from `end` on are left out and the
    last one is cut short to end at `end`; audio is trimmed to the sample.
    """

    start: float
    end: float | None = None


def make_playback(src: Path, dst: Path, info: MediaInfo, profile: PlaybackProfile) -> bool:
    """Write the playback MP4; True if the packets were copied, False if re-encoded.

    A remux the MP4 muxer refuses (odd timestamps, a codec tag it does not accept) falls
    back to a transcode; a truncated source fails either way and is not retried.
    """
    if not needs_transcode(info, profile):
        try:
            remux(src, dst)
        except MediaRejected as exc:
            if exc.reason == TRUNCATED:
                raise
        else:
            return True
    transcode(src, dst, info, profile)
    return False


def remux(src: Path, dst: Path) -> None:
    """Copy the video and audio packets into an MP4 with `+faststart`, no re-encoding."""
    with removed_on_failure(dst), open_source(src) as source:
        video = video_stream_of(source)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        audio = audio_stream_of(source)
        inputs: list[Stream] = [video] if audio is None else [video, audio]
        with playback_container(dst) as output:
            with rejected_as(ENCODING_FAILED):
                targets = {s.index: output.add_stream_from_template(s) for s in inputs}
            video_packets = 0
            for packet in demuxed(source, inputs):
                if packet.dts is None:  # the empty packet that marks a stream's end
                    continue
                if packet.stream_index == video.index:
                    video_packets += 1
                packet.stream = targets[packet.stream_index]
                with rejected_as(ENCODING_FAILED):
                    output.mux(packet)
            _check_complete(video, video_packets)


def transcode(src: Path, dst: Path, info: MediaInfo, profile: PlaybackProfile) -> None:
    """Re-encode to H.264 (libx264, yuv420p) and AAC in an MP4 with `+faststart`.

    The picture is turned upright (the output carries no rotation), scaled down to at
    most `profile.max_height` keeping its aspect, with even sides. Timestamps are the
    source's, shifted to start at zero.
    """
    with removed_on_failure(dst), open_source(src) as source:
        video = video_stream_of(source)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        audio = audio_stream_of(source) if info.audio_codec else None
        span = Span(start=(source.start_time or 0) / av.time_base)
        with playback_container(dst) as output:
            video_lane = VideoLane(video, output, info, profile, span)
            audio_lane = AudioLane(audio, output, profile, span) if audio else None
            inputs: list[Stream] = [video] if audio is None else [video, audio]
            for packet in demuxed(source, inputs):
                if packet.size == 0:  # end-of-stream marker; the lanes flush in `finish`
                    continue
                if packet.stream_index == video.index:
                    video_lane.feed(packet)
                elif audio_lane is not None:
                    audio_lane.feed(packet)
            video_lane.finish()
            if audio_lane is not None:
                audio_lane.finish()


class VideoLane:
    """Decode → (cut to the span) → upright/scale → libx264 for the video stream."""

    def __init__(
        self,
        stream: VideoStream,
        output: OutputContainer,
        info: MediaInfo,
        profile: PlaybackProfile,
        span: Span,
    ) -> None:
        self._stream = stream
        self._output = output
        decoder = stream.codec_context
        decoder.thread_type = "AUTO"
        decoder.thread_count = profile.threads
        self._decode = TolerantDecoder(stream.decode, VIDEO_CORRUPT)
        rate = stream.average_rate or stream.guessed_rate or _FALLBACK_FRAME_RATE
        self._time_base = stream.time_base or 1 / rate
        self._frame_ticks = max(1, round(1 / (rate * self._time_base)))
        self._offset = round(span.start / self._time_base)
        self._end = None if span.end is None else round(span.end / self._time_base)
        width, height = fit_within(
            *upright_size(info.width, info.height, info.rotation, stream.sample_aspect_ratio),
            max_height=profile.max_height,
        )
        with rejected_as(ENCODING_FAILED):
            self._encoder = output.add_stream(
                "libx264",
                rate=rate,
                options={"crf": str(profile.crf), "preset": profile.preset},
            )
            self._encoder.width = width
            self._encoder.height = height
            self._encoder.pix_fmt = "yuv420p"
            self._encoder.codec_context.time_base = self._time_base
            # PyAV defaults to slice threads; frame threads are what `ffmpeg` uses and
            # are much faster with libx264.
            self._encoder.codec_context.thread_type = "FRAME"
            self._encoder.codec_context.thread_count = profile.threads
        self._shaper = FrameShaper(
            rotation=info.rotation,
            width=width,
            height=height,
            pixel_format="yuv420p",
            time_base=self._time_base,
        )
        self._last_pts: int | None = None
        self._packets = 0
        #: A cut holds each frame until the next one tells how long it shows.
        self._held: VideoFrame | None = None
        #: Output pts → how long that frame shows (cuts only), for the packets' durations:
        #: libx264 leaves them out and the last one sets where the MP4 track ends.
        self._durations: dict[int, int] = {}
        self._end_pts = 0
        self.decoded_frames = 0
        self.frames = 0
        #: A cut has all its frames: the packets still to come are not needed.
        self.done = False

    @property
    def duration_seconds(self) -> float:
        """A cut's length: where its last frame stops showing."""
        return float(self._end_pts * self._time_base)

    def feed(self, packet: Packet[Stream]) -> None:
        self._packets += 1
        self._take(self._decode(packet))

    def finish(self) -> None:
        self._take(self._decode(None))
        with rejected_as(ENCODING_FAILED):
            if self._held is not None:
                held, self._held = self._held, None
                # The last frame shows as long as its packet said, or one frame time.
                shown = held.duration or self._frame_ticks
                self._write_until(held, self._pts_of(held) + shown)
            self._encode(self._shaper.flush())
            self._mux(self._encoder.encode(None))
        if self._end is None:
            _check_complete(self._stream, self._packets)
        if self.decoded_frames == 0:
            raise MediaRejected(VIDEO_CORRUPT)

    def _take(self, frames: list[VideoFrame]) -> None:
        with rejected_as(ENCODING_FAILED):
            for frame in frames:
                self.decoded_frames += 1
                if self._end is None:
                    self._retime(frame)
                    self._encode(self._shaper.push(frame))
                elif not self.done:
                    self._cut(frame, self._end)

    def _retime(self, frame: VideoFrame) -> None:
        """Start at zero, fill in missing timestamps, keep them strictly increasing."""
        if frame.pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._frame_ticks
        else:
            pts = frame.pts - self._offset
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        frame.pts = pts
        self._last_pts = pts

    def _cut(self, frame: VideoFrame, end: int) -> None:
        """Write the frame held so far if it shows inside the span, and hold this one.

        Frames come out of the decoder in display order: a frame at or before the
        span's start replaces the held one, which it hides; the first frame at or after
        its end closes the cut.
        """
        held, self._held = self._held, frame
        if frame.pts is None:
            frame.pts = self._offset if held is None else self._pts_of(held) + self._frame_ticks
        if held is None:
            return
        if frame.pts > self._offset:
            self._write_until(held, frame.pts)
        if frame.pts >= end:
            self._held = None
            self.done = True

    def _write_until(self, frame: VideoFrame, until: int) -> None:
        """Encode a cut's frame, shown until `until` (source ticks) or the span's end.

        The first frame starts the output at zero, the others keep their distance from
        the span's start: audio cut at the same start stays in sync.
        """
        assert self._end is not None
        until = min(until, self._end)
        if self._last_pts is None and until <= self._offset:
            return  # it stops showing before the span starts: the span is past the end
        previous = self._last_pts
        pts = 0 if previous is None else max(self._pts_of(frame) - self._offset, previous + 1)
        duration = max(1, until - self._offset - pts)
        frame.pts = pts
        self._last_pts = pts
        self._durations[pts] = duration
        self._end_pts = pts + duration
        self._encode(self._shaper.push(frame))

    @staticmethod
    def _pts_of(frame: VideoFrame) -> int:
        assert frame.pts is not None
        return frame.pts

    def _encode(self, frames: list[VideoFrame]) -> None:
        for frame in frames:
            # Decoded frames remember their I/P/B type and libx264 would obey it;
            # let the encoder choose, as `ffmpeg` does.
            frame.pict_type = PictureType.NONE
            self._mux(self._encoder.encode(frame))
            self.frames += 1

    def _mux(self, packets: list[Packet[Stream]]) -> None:
        for packet in packets:
            if packet.pts in self._durations:
                packet.duration = self._durations.pop(packet.pts)
        self._output.mux(packets)


class AudioLane:
    """Decode → (trim to the span) → resample to what the AAC encoder takes → aac."""

    def __init__(
        self,
        stream: AudioStream,
        output: OutputContainer,
        profile: PlaybackProfile,
        span: Span,
    ) -> None:
        self._stream = stream
        self._output = output
        self._decode = TolerantDecoder(stream.decode, AUDIO_CORRUPT)
        self._start_seconds = span.start
        self._trim = None if span.end is None else _AudioTrim(span.start, span.end)
        source_rate = stream.codec_context.sample_rate
        self._rate = source_rate if source_rate in _AAC_SAMPLE_RATES else 48_000
        self._time_base = Fraction(1, self._rate)
        layout = "mono" if stream.codec_context.channels == 1 else "stereo"
        with rejected_as(ENCODING_FAILED):
            self._encoder = output.add_stream("aac", rate=self._rate)
            self._encoder.layout = layout
            self._encoder.format = "fltp"
            self._encoder.bit_rate = profile.audio_bitrate
            self._encoder.codec_context.time_base = self._time_base
        self._resampler = AudioResampler(
            format="fltp", layout=layout, rate=self._rate, frame_size=_AAC_FRAME_SAMPLES
        )
        self._next_pts: int | None = None
        #: Samples written, at the output's rate.
        self.samples = 0

    @property
    def done(self) -> bool:
        """A cut's audio has reached the span's end."""
        return self._trim is not None and self._trim.done

    def feed(self, packet: Packet[Stream]) -> None:
        self._resample_and_encode(self._trimmed(self._decode(packet)))

    def finish(self) -> None:
        frames = self._trimmed(self._decode(None))
        if self._trim is not None:
            with rejected_as(ENCODING_FAILED):
                frames += self._trim.flush()
        self._resample_and_encode(frames)
        self._resample_and_encode([None])
        with rejected_as(ENCODING_FAILED):
            self._output.mux(self._encoder.encode(None))

    def _trimmed(self, frames: list[AudioFrame]) -> list[AudioFrame]:
        if self._trim is None:
            return frames
        with rejected_as(ENCODING_FAILED):
            return self._trim.push(frames)

    def _resample_and_encode(self, frames: Sequence[AudioFrame | None]) -> None:
        with rejected_as(ENCODING_FAILED):
            for frame in frames:
                if self._next_pts is None and frame is not None:
                    start = 0.0 if frame.time is None else frame.time - self._start_seconds
                    self._next_pts = max(0, round(start * self._rate))
                for resampled in self._resampler.resample(frame):
                    # Re-framed to 1024 samples, back to back: consecutive timestamps.
                    pts = self._next_pts or 0
                    resampled.pts = pts
                    resampled.time_base = self._time_base
                    self._next_pts = pts + resampled.samples
                    self.samples += resampled.samples
                    self._output.mux(self._encoder.encode(resampled))


class _AudioTrim:
    """FFmpeg's `atrim`: keeps the samples between two times of the source's timeline,
    cutting the frames across them to the sample. Built for the first frame's format."""

    def __init__(self, start: float, end: float) -> None:
        self._start = start
        self._end = end
        self._graph: Graph | None = None
        #: The graph's source and sink.
        self._ends: tuple[FilterContext, FilterContext] | None = None
        #: A frame from the end on came: nothing more to keep.
        self.done = False

    def push(self, frames: list[AudioFrame]) -> list[AudioFrame]:
        kept: list[AudioFrame] = []
        for frame in frames:
            if self.done:
                break
            self.done = frame.time is not None and frame.time >= self._end
            if self._ends is None:
                self._ends = self._build(frame)
            source, sink = self._ends
            source.push(frame)
            kept += pull_ready(sink, AudioFrame)
        return kept

    def flush(self) -> list[AudioFrame]:
        if self._ends is None:
            return []
        source, sink = self._ends
        source.push(None)
        return pull_ready(sink, AudioFrame)

    def _build(self, frame: AudioFrame) -> tuple[FilterContext, FilterContext]:
        rate = frame.sample_rate
        graph = Graph()
        source = graph.add_abuffer(
            sample_rate=rate,
            format=frame.format.name,
            layout=frame.layout.name,
            time_base=frame.time_base or Fraction(1, rate),
        )
        # `start_pts`/`end_pts` of atrim count samples of the timeline.
        trim = graph.add(
            "atrim", f"start_pts={round(self._start * rate)}:end_pts={round(self._end * rate)}"
        )
        sink = graph.add("abuffersink")
        graph.link_nodes(source, trim, sink)
        graph.configure()
        self._graph = graph  # the contexts live only as long as their graph
        return source, sink


@contextmanager
def playback_container(dst: Path) -> Iterator[OutputContainer]:
    """An MP4 output that moves `moov` to the front when it is closed."""
    with rejected_as(ENCODING_FAILED):
        output = av.open(str(dst), "w", format="mp4", options=_FASTSTART)
    try:
        yield output
    except BaseException:
        with contextlib.suppress(av.FFmpegError):
            output.close()
        raise
    with rejected_as(ENCODING_FAILED):
        output.close()


@contextmanager
def removed_on_failure(dst: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


def demuxed(source: InputContainer, streams: list[Stream]) -> Iterator[Packet[Stream]]:
    with rejected_as(VIDEO_CORRUPT):
        yield from source.demux(streams)


def _check_complete(video: VideoStream, packets_read: int) -> None:
    """MP4/MOV index every packet: reading fewer than listed means the file was cut."""
    if video.frames > 0 and packets_read < video.frames:
        raise MediaRejected(TRUNCATED)
