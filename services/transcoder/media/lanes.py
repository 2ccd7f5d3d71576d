"""The encoding lanes the playback transcode and the cut both run: what the source's video
and audio become in the web-playable MP4 (H.264/AAC, `moov` first), and how.

- `PlaybackProfile`: the output's size limit and encoder settings.
- The lanes, one per stream, each decode → shape → encode → mux: `VideoLane` (the
  decoding half, with the timing every lane shares), `PlaybackVideoLane` (one output:
  upright, within the profile's height, libx264) and `AudioLane` (resampled for and
  encoded with AAC, muxed into one output or, for the ladder, several).
  `WholeVideoLane` and `WholeAudioLane` write the whole stream with its own timing
  (the playback transcode); `CutVideoLane` and `CutAudioLane` write a `Span` of it,
  frame- and sample-accurately (the cut). The ladder (`ladder.py`) feeds one decode to
  an encoder per rung with a `VideoLane` of its own.
- `encode_lanes`: the one loop that demuxes the source into its lanes and finishes them,
  telling how far it got by the video packets' times (`packet_seconds`) and how many
  packets did not decode and were left out (a few are, as the `ffmpeg` tool does; the
  decoder conceals the pictures that referred to them). The audio lane reads its own
  opening of the file (`own_audio_stream`) on a thread of its own, as `ffmpeg` runs
  each encoder on a thread: AAC encoding overlaps the video's work.
- The output helpers: `add_x264_stream` (libx264 set up as every lane encodes),
  `playback_container`, `removed_on_failure` and `demuxed`.

Whether the source is whole (not truncated) is `probe`'s judgement, made before any lane
runs, for the playback transcode and the cut alike.
"""

from __future__ import annotations

import contextlib
import math
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
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
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from services.transcoder.media.errors import (
    AUDIO_CORRUPT,
    BEYOND_END,
    ENCODING_FAILED,
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

#: The playback file's MP4 flags: `moov` moved to the front when the file is closed.
FASTSTART = "+faststart"
#: The sample rates AAC signals directly; anything else is resampled to 48 kHz.
_AAC_SAMPLE_RATES = frozenset(
    {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000}
)
_AAC_FRAME_SAMPLES = 1024
#: The frame rate of a video stream that declares none: the encoder's rate, and how long
#: a frame shows when its timestamp or duration is missing.
_FALLBACK_FRAME_RATE = Fraction(25)
#: How far the audio lane's thread reads ahead of the video (`_AudioThread`): enough to
#: encode a smart cut's whole span while the video's head is encoded; its encoded
#: packets wait in memory meanwhile (about 1 MB a minute at 128 kb/s).
_AUDIO_LEAD_SECONDS = 60.0


@dataclass(frozen=True)
class PlaybackProfile:
    max_height: int = 1080
    crf: int = 23
    preset: str = "veryfast"
    audio_bitrate: int = 128_000
    #: Encoder and decoder threads; 0 lets FFmpeg pick one per core.
    threads: int = 0


@dataclass(frozen=True)
class Span:
    """What a cut writes: `[start, end)` in seconds of the source's timeline (where its
    timestamps say).

    The frame shown at `start` opens the output at zero, every later frame keeps its
    distance from `start`, frames shown from `end` on are left out and the last one is cut
    short to end at `end`; audio is trimmed to the sample.
    """

    start: float
    end: float


def encode_lanes(
    source: InputContainer,
    video_lane: VideoLane,
    audio_lane: AudioLane | None,
    on_video_time: Callable[[float], None] | None = None,
) -> int:
    """Demux the video lane's stream from `source` into it and finish it, while the
    audio lane reads its own opening of the file (`own_audio_stream`) on a thread of
    its own (`_AudioThread`); return the packets left out because they did not decode.

    Reading stops once the video lane is `done`. `on_video_time` is told the time of
    each video packet fed (`packet_seconds`), after it was fed: how far into the source
    the job got.
    """
    with contextlib.ExitStack() as stack:
        audio = stack.enter_context(_AudioThread(audio_lane)) if audio_lane else None
        for packet in demuxed(source, [video_lane.stream]):
            if packet.size == 0:  # end-of-stream marker; the lane flushes in `finish`
                continue
            seconds = packet_seconds(packet)
            video_lane.feed(packet)
            if seconds is not None:
                if on_video_time is not None:
                    on_video_time(seconds)
                if audio is not None:
                    audio.video_at(seconds)
            if video_lane.done:
                break
        video_lane.finish()
        if audio is not None:
            audio.finish()
    return video_lane.dropped_packets + (audio_lane.dropped_packets if audio_lane else 0)


class _AudioThread:
    """Feeds an audio lane from its own opening of the file, on a thread of its own.

    PyAV lets go of the GIL inside FFmpeg, so the audio's decoding and AAC encoding run
    beside libx264 or, in a smart cut, beside the copying (as the `ffmpeg` tool runs
    each encoder on a thread of its own) instead of adding to the video's time. The
    thread reads at most `_AUDIO_LEAD_SECONDS` ahead of the video; what it encodes is
    muxed on the caller's thread, no further than the video has got, so the output
    stays interleaved and one thread writes it. A failure on the thread is raised on
    the caller's at the next video packet or at `finish`; leaving the context stops it.
    """

    def __init__(self, lane: AudioLane) -> None:
        self.lane = lane
        self._changed = threading.Condition()
        #: Where the video has got (seconds of the source's timeline); None: not started.
        self._video_seconds: float | None = None
        self._stopping = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="audio-lane", daemon=True)

    def __enter__(self) -> _AudioThread:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()
        self._thread.join()

    def video_at(self, seconds: float) -> None:
        """The video got to `seconds`: let the audio read on, mux what it has up to there."""
        with self._changed:
            self._video_seconds = seconds
            self._changed.notify()
        self._raise_failure()
        self.lane.mux_encoded(until=seconds)

    def finish(self) -> None:
        """The video is done: let the lane finish, then mux the rest."""
        self.video_at(math.inf)
        self._thread.join()
        self._raise_failure()
        self.lane.mux_encoded()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        lane = self.lane
        source = lane.stream.container
        assert isinstance(source, InputContainer)
        try:
            for packet in demuxed(source, [lane.stream]):
                if packet.size == 0:
                    continue
                if not self._wait_for_video(packet_seconds(packet)):
                    return
                lane.feed(packet)
                if lane.done:
                    break
            lane.finish()
        except BaseException as exc:  # handed to the caller's thread
            self._failure = exc

    def _wait_for_video(self, seconds: float | None) -> bool:
        """Wait while `seconds` is too far ahead of the video; False: stop instead."""
        with self._changed:
            while not self._stopping and not self._may_read(seconds):
                self._changed.wait()
            return not self._stopping

    def _may_read(self, seconds: float | None) -> bool:
        video = self._video_seconds
        return seconds is None or video is None or seconds <= video + _AUDIO_LEAD_SECONDS


class VideoLane(ABC):
    """Decode the video stream and hand the frames to the subclasses, which decide which
    are written, with what timestamps, and where (one output, or the ladder's several)."""

    def __init__(self, stream: VideoStream, start: float, profile: PlaybackProfile) -> None:
        """`start` (seconds of the source's timeline) becomes the output's zero."""
        self.stream = stream
        decoder = stream.codec_context
        decoder.thread_type = "AUTO"
        decoder.thread_count = profile.threads
        self._decode = TolerantDecoder(stream.decode, VIDEO_CORRUPT)
        self._rate = stream.average_rate or stream.guessed_rate or _FALLBACK_FRAME_RATE
        self._time_base = stream.time_base or 1 / self._rate
        self._frame_ticks = max(1, round(1 / (self._rate * self._time_base)))
        self._offset = round(start / self._time_base)
        #: The output timestamp of the last frame written.
        self._last_pts: int | None = None
        #: Frames decoded, frames encoded.
        self.decoded_frames = 0
        self.frames = 0

    @property
    def done(self) -> bool:
        """All the frames are written: the packets still to come are not needed."""
        return False

    @property
    def dropped_packets(self) -> int:
        """Packets fed that did not decode."""
        return self._decode.dropped

    def feed(self, packet: Packet[Stream]) -> None:
        self._take(self._decode(packet))

    @abstractmethod
    def finish(self) -> None:
        """Write what is left after the last packet, then check what was read."""

    @abstractmethod
    def _take_frame(self, frame: VideoFrame) -> None:
        """Write (or hold, or leave out) one decoded frame."""

    def _take(self, frames: list[VideoFrame]) -> None:
        with rejected_as(ENCODING_FAILED):
            for frame in frames:
                self.decoded_frames += 1
                self._take_frame(frame)

    def _check_decoded(self) -> None:
        if self.decoded_frames == 0:
            raise MediaRejected(VIDEO_CORRUPT)

    def _retime(self, frame: VideoFrame) -> None:
        """The whole stream's timing: start at zero, fill in missing timestamps, keep
        them strictly increasing."""
        if frame.pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._frame_ticks
        else:
            pts = frame.pts - self._offset
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        frame.pts = pts
        self._last_pts = pts


class PlaybackVideoLane(VideoLane):
    """A video lane with one output: upright, scaled to the profile's height, libx264."""

    def __init__(
        self,
        stream: VideoStream,
        start: float,
        output: OutputContainer,
        info: MediaInfo,
        profile: PlaybackProfile,
    ) -> None:
        super().__init__(stream, start, profile)
        self._output = output
        width, height = fit_within(
            *upright_size(info.width, info.height, info.rotation, stream.sample_aspect_ratio),
            max_height=profile.max_height,
        )
        with rejected_as(ENCODING_FAILED):
            self._encoder: VideoStream | VideoCodecContext = self._open_encoder(
                output, self._rate, width, height, profile
            )
        self._shaper = FrameShaper(
            rotation=info.rotation,
            width=width,
            height=height,
            pixel_format="yuv420p",
            time_base=self._time_base,
        )

    def _open_encoder(
        self,
        output: OutputContainer,
        rate: Fraction,
        width: int,
        height: int,
        profile: PlaybackProfile,
    ) -> VideoStream | VideoCodecContext:
        """The libx264 encoder the frames go to, as a stream of `output`."""
        return add_x264_stream(output, rate, self._time_base, width, height, profile)

    def _flush_encoder(self) -> None:
        """Write the frames still in the filter graph and the encoder."""
        with rejected_as(ENCODING_FAILED):
            self._encode(self._shaper.flush())
            self._mux(self._encoder.encode(None))

    def _encode(self, frames: list[VideoFrame]) -> None:
        for frame in frames:
            # Decoded frames remember their I/P/B type and libx264 would obey it;
            # let the encoder choose, as `ffmpeg` does.
            frame.pict_type = PictureType.NONE
            self._mux(self._encoder.encode(frame))
            self.frames += 1

    def _mux(self, packets: list[Packet[Stream]]) -> None:
        self._output.mux(packets)


class WholeVideoLane(PlaybackVideoLane):
    """Every frame of the stream, with its own timing shifted to start at zero (the
    playback transcode)."""

    def finish(self) -> None:
        self._take(self._decode(None))
        self._flush_encoder()
        self._check_decoded()

    def _take_frame(self, frame: VideoFrame) -> None:
        self._retime(frame)
        self._encode(self._shaper.push(frame))


class CutVideoLane(PlaybackVideoLane):
    """The frames shown in a `Span` of the stream, cut to it (the cut)."""

    def __init__(
        self,
        stream: VideoStream,
        span: Span,
        output: OutputContainer,
        info: MediaInfo,
        profile: PlaybackProfile,
        *,
        from_keyframe: bool,
    ) -> None:
        """`from_keyframe`: the source was seeked, so the packets before the first
        keyframe are skipped (MPEG-TS may land before it, and they cannot be decoded)."""
        super().__init__(stream, span.start, output, info, profile)
        self._end = round(span.end / self._time_base)
        self._at_keyframe = not from_keyframe
        #: Each frame is held until the next one tells how long it shows.
        self._held: VideoFrame | None = None
        #: Output pts → how long that frame shows, for the packets' durations: libx264
        #: leaves them out and the last one sets where the MP4 track ends.
        self._durations: dict[int, int] = {}
        self._end_pts = 0
        self._done = False
        #: When the first frame written shows in the source's timeline (seconds).
        self.first_frame_seconds: float | None = None

    @property
    def done(self) -> bool:
        return self._done

    @property
    def duration_seconds(self) -> float:
        """The cut's length: where its last frame stops showing."""
        return float(self._end_pts * self._time_base)

    def feed(self, packet: Packet[Stream]) -> None:
        self._at_keyframe = self._at_keyframe or packet.is_keyframe
        if self._at_keyframe:
            super().feed(packet)

    def finish(self) -> None:
        """Write the held frame, then refuse a span with no frame in the video."""
        self._take(self._decode(None))
        with rejected_as(ENCODING_FAILED):
            if self._held is not None:
                held, self._held = self._held, None
                # The last frame shows as long as its packet said, or one frame time.
                shown = held.duration or self._frame_ticks
                self._write_until(held, self._pts_of(held) + shown)
        self._flush_encoder()
        self._check_decoded()
        if self.frames == 0:
            raise MediaRejected(BEYOND_END)

    def _take_frame(self, frame: VideoFrame) -> None:
        if not self._done:
            self._cut(frame)

    def _cut(self, frame: VideoFrame) -> None:
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
        if frame.pts >= self._end:
            self._held = None
            self._done = True

    def _write_until(self, frame: VideoFrame, until: int) -> None:
        """Encode a frame, shown until `until` (source ticks) or the span's end.

        The first frame starts the output at zero, the others keep their distance from
        the span's start: audio cut at the same start stays in sync.
        """
        until = min(until, self._end)
        if self._last_pts is None and until <= self._offset:
            return  # it stops showing before the span starts: the span is past the end
        previous = self._last_pts
        if previous is None:
            self.first_frame_seconds = float(self._pts_of(frame) * self._time_base)
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

    def _mux(self, packets: list[Packet[Stream]]) -> None:
        for packet in packets:
            if packet.pts in self._durations:
                packet.duration = self._durations.pop(packet.pts)
        super()._mux(packets)


class AudioLane(ABC):
    """Decode → resample to what the AAC encoder takes → aac for the audio stream; the
    subclasses decide which samples are written."""

    def __init__(
        self,
        stream: AudioStream,
        start: float,
        output: OutputContainer,
        profile: PlaybackProfile,
        copies: Sequence[OutputContainer] = (),
    ) -> None:
        """`start` (seconds of the source's timeline) becomes the output's zero. The
        encoded packets go to `output` and to each of `copies` (the ladder's renditions
        share one AAC encode)."""
        self.stream = stream
        self._output = output
        self._decode = TolerantDecoder(stream.decode, AUDIO_CORRUPT)
        self._start_seconds = start
        source_rate = stream.codec_context.sample_rate
        self._rate = source_rate if source_rate in _AAC_SAMPLE_RATES else 48_000
        self._time_base = Fraction(1, self._rate)
        layout = "mono" if stream.codec_context.channels == 1 else "stereo"
        with rejected_as(ENCODING_FAILED):
            self._encoder = self._add_aac_stream(output, layout, profile)
            # Streams set up as the encoder is, never fed: their headers (the AAC
            # AudioSpecificConfig) are the encoder's, and its packets are muxed into them.
            self._copies = [(copy, self._add_aac_stream(copy, layout, profile)) for copy in copies]
        self._resampler = AudioResampler(
            format="fltp", layout=layout, rate=self._rate, frame_size=_AAC_FRAME_SAMPLES
        )
        self._next_pts: int | None = None
        #: Packets encoded and not muxed yet (`mux_encoded`).
        self._encoded: deque[Packet[Stream]] = deque()
        #: Samples written, at the output's rate.
        self.samples = 0

    @property
    def done(self) -> bool:
        """All the samples are written: the packets still to come are not needed."""
        return False

    @property
    def dropped_packets(self) -> int:
        """Packets fed that did not decode."""
        return self._decode.dropped

    @abstractmethod
    def feed(self, packet: Packet[Stream]) -> None:
        """Decode a packet and encode the samples of it that are kept."""

    @abstractmethod
    def finish(self) -> None:
        """Encode what is left after the last packet."""

    def mux_encoded(self, until: float | None = None) -> None:
        """Mux the packets encoded so far that start before `until` (seconds of the
        source's timeline; None: all). The lane is fed on another thread: its packets
        wait in a deque (thread-safe at both ends) for the thread that writes."""
        limit = None if until is None else (until - self._start_seconds) * self._rate
        with rejected_as(ENCODING_FAILED):
            while self._encoded and (limit is None or (self._encoded[0].pts or 0) <= limit):
                packet = self._encoded.popleft()
                # Each output gets a packet of its own: muxing retimes a packet to its
                # output's stream, and PyAV may hold on to it until the header is written.
                for output, stream in self._copies:
                    output.mux(_copied(packet, stream))
                self._output.mux(packet)

    def _add_aac_stream(
        self, output: OutputContainer, layout: str, profile: PlaybackProfile
    ) -> AudioStream:
        stream = output.add_stream("aac", rate=self._rate)
        stream.layout = layout
        stream.format = "fltp"
        stream.bit_rate = profile.audio_bitrate
        stream.codec_context.time_base = self._time_base
        return stream

    def _flush_encoder(self) -> None:
        """Encode the samples still in the resampler and the encoder."""
        self._resample_and_encode([None])
        with rejected_as(ENCODING_FAILED):
            self._encoded.extend(self._encoder.encode(None))

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
                    self._encoded.extend(self._encoder.encode(resampled))


class WholeAudioLane(AudioLane):
    """Every sample of the stream (the playback transcode)."""

    def feed(self, packet: Packet[Stream]) -> None:
        self._resample_and_encode(self._decode(packet))

    def finish(self) -> None:
        self._resample_and_encode(self._decode(None))
        self._flush_encoder()


class CutAudioLane(AudioLane):
    """The samples of a `Span` of the stream, trimmed to the sample (the cut)."""

    def __init__(
        self, stream: AudioStream, span: Span, output: OutputContainer, profile: PlaybackProfile
    ) -> None:
        super().__init__(stream, span.start, output, profile)
        self._trim = _AudioTrim(span.start, span.end)

    @property
    def done(self) -> bool:
        return self._trim.done

    def feed(self, packet: Packet[Stream]) -> None:
        self._resample_and_encode(self._trimmed(self._decode(packet)))

    def finish(self) -> None:
        frames = self._trimmed(self._decode(None))
        with rejected_as(ENCODING_FAILED):
            frames += self._trim.flush()
        self._resample_and_encode(frames)
        self._flush_encoder()

    def _trimmed(self, frames: list[AudioFrame]) -> list[AudioFrame]:
        with rejected_as(ENCODING_FAILED):
            return self._trim.push(frames)


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


def add_x264_stream(
    output: OutputContainer,
    rate: Fraction,
    time_base: Fraction,
    width: int,
    height: int,
    profile: PlaybackProfile,
    options: dict[str, str] | None = None,
) -> VideoStream:
    """A libx264 stream of `output` encoding yuv420p frames of `width` x `height`,
    stamped in `time_base`, with the profile's CRF, preset and threads (and `options`
    on top)."""
    encoder = output.add_stream(
        "libx264",
        rate=rate,
        options={"crf": str(profile.crf), "preset": profile.preset, **(options or {})},
    )
    encoder.width = width
    encoder.height = height
    encoder.pix_fmt = "yuv420p"
    encoder.codec_context.time_base = time_base
    # PyAV defaults to slice threads; frame threads are what `ffmpeg` uses and are much
    # faster with libx264.
    encoder.codec_context.thread_type = "FRAME"
    encoder.codec_context.thread_count = profile.threads
    return encoder


@contextmanager
def playback_container(dst: Path, movflags: str = FASTSTART) -> Iterator[OutputContainer]:
    """An MP4 output written with `movflags`: by default, `moov` moved to the front
    when it is closed."""
    with rejected_as(ENCODING_FAILED):
        output = av.open(str(dst), "w", format="mp4", options={"movflags": movflags})
    try:
        yield output
    except BaseException:
        with contextlib.suppress(av.FFmpegError):
            output.close()
        raise
    with rejected_as(ENCODING_FAILED):
        output.close()


@contextmanager
def own_audio_stream(
    src: Path, info: MediaInfo, seek_target: int | None = None
) -> Iterator[AudioStream | None]:
    """The source's audio stream (None without audio) on an opening of the file of its
    own, for an audio lane read on its own thread (`encode_lanes`), sought as the video
    is: to `seek_target` (video ticks) by the video stream, so the audio starts where
    the video's keyframe is."""
    if not info.audio_codec:
        yield None
        return
    with open_source(src) as source:
        audio = audio_stream_of(source)
        video = video_stream_of(source)
        if audio is not None and video is not None and seek_target is not None:
            with rejected_as(VIDEO_CORRUPT):
                source.seek(seek_target, stream=video, backward=True)
        yield audio


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


def packet_seconds(packet: Packet[Stream]) -> float | None:
    """When the packet is shown (or decoded, if that is all it says), in seconds of the
    source's timeline; None if it has no timestamp."""
    ticks = packet.dts if packet.pts is None else packet.pts
    return None if ticks is None else float(ticks * packet.time_base)


def _copied(packet: Packet[Stream], stream: Stream) -> Packet[Stream]:
    """A new packet with `packet`'s data and timing, for `stream`."""
    copy = Packet(bytes(packet))
    copy.pts = packet.pts
    copy.dts = packet.dts
    copy.duration = packet.duration
    copy.time_base = packet.time_base
    copy.is_keyframe = packet.is_keyframe
    copy.stream = stream
    return copy
