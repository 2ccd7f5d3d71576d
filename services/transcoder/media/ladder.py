"""The adaptive-streaming ladder: one upload as several renditions (rungs) of decreasing
size, each a fragmented MP4 that HLS addresses by byte ranges and that a browser also
plays as it is, from `<video src=...>` (there is no other progressive file).

- `plan_ladder`: which rungs a source gets (`Rung`: size and bitrate cap).
- `remux_rendition`: the source's own rung with its packets copied (`playback.remux`,
  which decodes what it copies), when a browser plays them as they are.
- `encode_renditions`: one decode of the source feeding every rung's libx264 encoder
  (`_LadderVideoLane`, a `lanes.VideoLane`) and one AAC encode of the audio muxed into
  every rendition, through the lanes' one demux loop (`lanes.encode_lanes`).
- `read_fragments`, `keyframe_times`: a rendition's layout (`fmp4.py`), and `Rendition`
  describes a written file for the playlists (byte ranges, bandwidths, CODECS).

Decisions:
- The MP4 flags (`MOVFLAGS`): `frag_keyframe` starts a fragment (`moof` + `mdat`) at
  every video keyframe, so fragments are the HLS segments and every one starts on one;
  `empty_moov` puts an init segment (`ftyp` + `moov` describing no samples) first;
  `default_base_moof` makes each fragment's data offsets relative to its own `moof`;
  `skip_trailer` leaves out the `mfra` index at the end (FFmpeg's demuxer does not read
  it unless told to; the `sidx` does its work), so the init segment and the fragments
  make up the whole file. `global_sidx` writes one `sidx` per track after the `moov`,
  indexing every fragment (time and bytes): without it Chromium's demuxer reads every
  `moof` of the file before it can tell the duration (measured: 73 range requests and
  1.1 s on loopback for a 2-minute 720p file; with it, 2 requests and 0.24 s). It
  belongs to the init segment here (`fmp4.py`): HLS players read the init segment for
  its `moov` and skip the rest, as MP4 readers skip boxes they do not use (hls.js 1.x
  in Chromium played a ladder of these files through every level, with the `sidx` in
  its `EXT-X-MAP` range). `delay_moov` writes the `moov` once the first
  fragment is cut, knowing the streams' first timestamps, so it carries edit lists:
  video with B-frames is decoded before it is shown (its first sample shows a frame or
  two after its decoding time) and AAC starts with priming samples; the edit lists
  start both at zero, as in the source. Chromium (whether reading the file or fed its
  fragments through Media Source Extensions, as hls.js does) applies them: the first
  frame shows at 0.0 and audio is trimmed to the sample. FFmpeg's `cmaf` flag was
  tried and not kept: its negative composition offsets keep the video's presentation
  times without an edit list, but FFmpeg's demuxer, which Chromium uses for
  `<video src>`, then shows every frame two frames late against the sound (measured
  0.08 s at 25 fps), and the AAC priming is played.
- Times: every rendition's timeline is the source's shifted to start at zero (the
  copied rung too: `playback.remux`), so fragments line up across rungs by their
  presentation times, which is what `keyframe_times` and `Fragment.duration` read
  (edit list applied).
- Keyframes: forced by marking frames I (`pict_type`), which FFmpeg's libx264 turns into
  IDR frames (`forced-idr`); x264 adds none of its own (`scenecut=0`, `keyint=infinite`).
  A keyframe goes to the first frame at or after each alignment time: every
  `KEYFRAME_SECONDS` of the source's timeline, or the times given (the copied rung's
  keyframes, so the encoded rungs' fragments line up with its).
- Rate control: the profile's CRF capped by the rung's `maxrate`, with a VBV buffer of
  twice that (`bufsize`): t seconds of video hold at most (2 + t) x `maxrate` bits, so
  a 2 s fragment may carry up to twice the cap (the start of a clip, a busy scene);
  `bandwidth` reports what the fragments really carry.
- One AAC encode feeds every rendition (its packets copied into each): measured 0.9 s
  of CPU per minute of stereo audio per encode, which an encode per rendition would
  spend again for every rung, next to encoders that already use both cores.
- Threads: one thread decodes, shapes and feeds the rung encoders in turn, each
  libx264 with its own frame threads (the profile's count; 0 lets FFmpeg choose).
  Measured on two cores for four rungs of 20 s of 720p VP9: 1.83-1.87 cores busy and
  7.6-8.1 s for any count from 0 to 6 (0: 8.0 s), against 1.0 core and 14.6 s with one
  thread each; both cores are busy, so a Python thread per rung would gain little.
  The ladder takes 0.65-0.72 of the time of the `ffmpeg` command line run once per
  rung, for outputs of the same size (the benchmark: four rungs of 60 s of 720p VP9,
  `python -m bench --only ladder`, three runs on a shared two-core machine).
- Bandwidths, as HLS defines them: `bandwidth` is the peak of the fragments' bit rates
  (bytes of a `moof` + `mdat` over its duration; fragments shorter than
  `_PEAK_MIN_SECONDS`, such as a last one of a few frames, left out: a keyframe over a
  few frames is no rate a player sustains), `average_bandwidth` the fragments' bytes
  over the whole duration (the init segment is fetched once, not streamed), so it
  never exceeds the peak.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.container import OutputContainer
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from services.transcoder.media.errors import ENCODING_FAILED, NO_VIDEO, MediaRejected, rejected_as
from services.transcoder.media.fmp4 import Fragment, read_layout
from services.transcoder.media.geometry import FrameShaper, upright_size
from services.transcoder.media.lanes import (
    PlaybackProfile,
    VideoLane,
    WholeAudioLane,
    add_x264_stream,
    encode_lanes,
    own_audio_stream,
    playback_container,
    removed_on_failure,
)
from services.transcoder.media.playback import remux
from services.transcoder.media.probe import MediaInfo, open_source, video_stream_of
from services.transcoder.media.progress import Meter, Progress

__all__ = [
    "DEFAULT_HEIGHTS",
    "KEYFRAME_SECONDS",
    "MOVFLAGS",
    "Fragment",
    "Rendition",
    "Rung",
    "encode_renditions",
    "keyframe_times",
    "plan_ladder",
    "read_fragments",
    "remux_rendition",
]

#: Fragments shorter than this do not count towards `Rendition.bandwidth`, the peak.
_PEAK_MIN_SECONDS = 0.5
#: The rungs' names (the picture's shorter side) a caller usually asks for.
DEFAULT_HEIGHTS = (1080, 720, 480, 360, 240)
#: Each rung's bitrate cap (libx264 `maxrate`), by name; other names are scaled from the
#: nearest one by pixel count.
_BITRATES = {1080: 5_000_000, 720: 2_800_000, 480: 1_400_000, 360: 800_000, 240: 400_000}
#: How far apart the encoded rungs' keyframes (and so fragments) are, unless given.
KEYFRAME_SECONDS = 2.0
#: How far before an alignment time a frame may start and still take its keyframe:
#: well under a frame, over any rounding of the times.
_KEYFRAME_TOLERANCE = 1e-3
#: See the module's decisions.
MOVFLAGS = "+frag_keyframe+empty_moov+delay_moov+default_base_moof+global_sidx+skip_trailer"


@dataclass(frozen=True)
class Rung:
    #: Output height (upright picture), even.
    height: int
    #: Even, keeps the source's display aspect.
    width: int
    #: Bits/s: libx264 `maxrate` (CRF from the profile, capped by it; `bufsize` is twice).
    video_bitrate: int

    @property
    def name(self) -> str:
        """What players call it: the picture's shorter side ("720p", for a landscape
        1280x720 and a portrait 720x1280 alike)."""
        return f"{min(self.width, self.height)}p"


@dataclass(frozen=True)
class Rendition:
    height: int
    width: int
    path: Path
    #: RFC 6381, for HLS `CODECS`: "avc1.64001f,mp4a.40.2" (without audio, the video's).
    codecs: str
    #: Peak bits/s over any fragment (HLS `BANDWIDTH`).
    bandwidth: int
    #: Bits/s over the whole file (HLS `AVERAGE-BANDWIDTH`).
    average_bandwidth: int
    #: Bytes `[0, init_size)` are the init segment (`EXT-X-MAP` byte range).
    init_size: int
    fragments: tuple[Fragment, ...]
    duration_seconds: float
    #: The source's packets copied (True) or encoded (False).
    remuxed: bool
    size_in_bytes: int
    #: Source packets left out because they did not decode (the encoders leave a few
    #: out, as the playback transcode does; a copy has none, or it is refused).
    dropped_packets: int = 0


def plan_ladder(info: MediaInfo, heights: Sequence[int], max_height: int) -> list[Rung]:
    """The rungs for a source probed as `info`, highest first.

    Rungs are named by the upright picture's shorter side, as players name them: a
    1920x1080 video and a 1080x1920 phone video both get 1080p, 720p... (the phone's
    720p rung is 720x1280), and `max_height` caps that side too (a 1080x1920 video with
    `max_height` 720 tops out at 720x1280), as `probe` judges portrait and landscape
    alike. The rungs are the names in `heights` at or below both the source's shorter
    side and `max_height`, and the source's own (its shorter side, made even) when it
    is at or below `max_height` and not among them: a 540p source gets 540, 480, 360,
    240; a 144p source only 144. A source above `max_height` with no name in `heights`
    under it gets one rung, `max_height`. The longer side keeps the display aspect,
    rounded to the nearest even number (854x480 and 426x240 for 16:9). `MediaInfo`
    carries no sample aspect ratio: pixels are taken as square.

    Bitrate caps come from `_BITRATES` by name; another name gets the nearest listed
    one's, scaled by the pixel count (540p: 480p's 1.4 Mb/s x (540/480)^2).
    """
    width, height = upright_size(info.width, info.height, info.rotation)
    short, long = min(width, height), max(width, height)
    limit = min(short, max_height)
    names = {name for name in heights if name <= limit}
    if short <= max_height or not names:
        names.add(max(2, limit // 2 * 2))
    rungs = []
    for name in sorted(names, reverse=True):
        other = max(2, round(long * name / short / 2) * 2)
        rung_width, rung_height = (other, name) if width >= height else (name, other)
        rungs.append(Rung(height=rung_height, width=rung_width, video_bitrate=_bitrate(name)))
    return rungs


def remux_rendition(
    src: Path,
    dst: Path,
    info: MediaInfo,
    progress: Progress | None = None,
    *,
    check: bool = True,
) -> Rendition:
    """The source's own rung: its H.264/AAC packets copied (not re-encoded) into a
    fragmented MP4, one fragment per keyframe of the source, each packet decoded on
    the way as `playback.remux` does (`MediaRejected` when one does not decode, and
    `dst` is removed: the caller encodes then), unless `check` is False (the caller
    decodes the source afterwards anyway, and encodes this rung too if a packet does
    not decode).

    Only for sources where `playback.needs_transcode(info, profile)` is False: their
    packets play in a browser as they are, upright.
    """
    remux(src, dst, progress, movflags=MOVFLAGS, check=check)
    width, height = upright_size(info.width, info.height, info.rotation)
    return _rendition(dst, width, height, remuxed=True)


def encode_renditions(
    src: Path,
    outputs: Sequence[tuple[Rung, Path]],
    info: MediaInfo,
    profile: PlaybackProfile,
    progress: Progress | None = None,
    keyframe_times: Sequence[float] | None = None,
) -> list[Rendition]:
    """Encode every rung of `outputs` to its path from ONE decode of the source: upright,
    scaled, yuv420p, H.264 (libx264 with the profile's CRF and preset, capped by the
    rung's bitrate) and, where the source has sound, AAC-LC encoded once and muxed into
    every rendition.

    Keyframes, and so fragments, line up across the rungs: every `KEYFRAME_SECONDS` of
    the source's timeline, or at `keyframe_times` (seconds from the start, the copied
    rung's `keyframe_times`). Raises `MediaRejected` as the playback transcode does, and
    removes every output then. `progress`: the video packets decoded, by their time
    against the probed duration. Returns the renditions in the order of `outputs`.
    """
    if not outputs:
        raise ValueError("no rung to encode")
    schedule = _KeyframeSchedule(keyframe_times)
    with contextlib.ExitStack() as stack:
        for _, dst in outputs:
            stack.enter_context(removed_on_failure(dst))
        source = stack.enter_context(open_source(src))
        audio = stack.enter_context(own_audio_stream(src, info))
        video = video_stream_of(source)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        start = (source.start_time or 0) / av.time_base
        meter = Meter(progress, start, start + info.duration_seconds)
        containers = [stack.enter_context(playback_container(dst, MOVFLAGS)) for _, dst in outputs]
        rungs = [rung for rung, _ in outputs]
        video_lane = _LadderVideoLane(video, start, rungs, containers, info, profile, schedule)
        audio_lane = (
            WholeAudioLane(audio, start, containers[0], profile, copies=containers[1:])
            if audio
            else None
        )
        dropped = encode_lanes(source, video_lane, audio_lane, meter.at)
        # Leaving the stack closes the outputs (the muxer writes the sidx then); the
        # renditions are read from the files after that.
    meter.done()
    return [
        _rendition(dst, rung.width, rung.height, remuxed=False, dropped_packets=dropped)
        for rung, dst in outputs
    ]


def read_fragments(path: Path) -> tuple[int, list[Fragment]]:
    """The top-level layout of a fragmented MP4: the init segment's size (everything
    before the first `moof`) and every fragment (`moof` and its `mdat`), with its
    duration from the video track's sample durations (`fmp4.py`)."""
    layout = read_layout(path)
    return layout.init_size, layout.fragments


def keyframe_times(path: Path) -> list[float]:
    """When each fragment of a rendition starts: the presentation time (seconds, edit
    list applied) of its first video sample, a keyframe. Given to `encode_renditions`,
    the copied rung's make the encoded rungs' fragments start where its do."""
    return read_layout(path).starts


class _KeyframeSchedule:
    """Which frames must be keyframes: the first at or after each alignment time."""

    def __init__(self, times: Sequence[float] | None) -> None:
        self._times = None if times is None else sorted(times)
        self._index = 0
        #: The next alignment time; the first frame is a keyframe in any case.
        self._next = 0.0

    def due(self, seconds: float) -> bool:
        """Whether the frame shown at `seconds` takes a keyframe; call in display order."""
        if seconds < self._next - _KEYFRAME_TOLERANCE:
            return False
        if self._times is None:
            # This frame takes the grid's times up to it (and one just after it).
            passed = math.floor((seconds + _KEYFRAME_TOLERANCE) / KEYFRAME_SECONDS)
            self._next = (passed + 1) * KEYFRAME_SECONDS
        else:
            while (
                self._index < len(self._times)
                and self._times[self._index] <= seconds + _KEYFRAME_TOLERANCE
            ):
                self._index += 1
            self._next = self._times[self._index] if self._index < len(self._times) else math.inf
        return True


class _RungEncoder:
    """One rung's end of the ladder's lane: its `FrameShaper`, its libx264 stream and
    its output."""

    def __init__(
        self,
        output: OutputContainer,
        rung: Rung,
        rate: Fraction,
        time_base: Fraction,
        rotation: int,
        profile: PlaybackProfile,
    ) -> None:
        self._output = output
        options = {
            "maxrate": str(rung.video_bitrate),
            "bufsize": str(2 * rung.video_bitrate),
            "forced-idr": "1",
            "x264-params": "scenecut=0:keyint=infinite",
        }
        self._encoder: VideoStream = add_x264_stream(
            output, rate, time_base, rung.width, rung.height, profile, options
        )
        self._shaper = FrameShaper(
            rotation=rotation,
            width=rung.width,
            height=rung.height,
            pixel_format="yuv420p",
            time_base=time_base,
        )

    def encode(self, frame: VideoFrame, keyframe: bool) -> None:
        """Shape and encode one frame (a keyframe if `keyframe`)."""
        for shaped in self._shaper.push(frame):
            # Decoded frames keep the source's I/P/B type, which libx264 would obey:
            # only the schedule's frames are forced.
            forced = keyframe and shaped.pts == frame.pts
            shaped.pict_type = PictureType.I if forced else PictureType.NONE
            self._output.mux(self._encoder.encode(shaped))

    def flush(self) -> None:
        """Encode the frames still in the filter graph and the encoder."""
        for shaped in self._shaper.flush():
            shaped.pict_type = PictureType.NONE
            self._output.mux(self._encoder.encode(shaped))
        self._output.mux(self._encoder.encode(None))


class _LadderVideoLane(VideoLane):
    """Every frame of the stream, timed as the playback transcode's (shifted to start at
    zero), decoded once and encoded by every rung's encoder."""

    def __init__(
        self,
        stream: VideoStream,
        start: float,
        rungs: Sequence[Rung],
        outputs: Sequence[OutputContainer],
        info: MediaInfo,
        profile: PlaybackProfile,
        schedule: _KeyframeSchedule,
    ) -> None:
        super().__init__(stream, start, profile)
        self._schedule = schedule
        with rejected_as(ENCODING_FAILED):
            self._encoders = [
                _RungEncoder(output, rung, self._rate, self._time_base, info.rotation, profile)
                for rung, output in zip(rungs, outputs, strict=True)
            ]

    def finish(self) -> None:
        self._take(self._decode(None))
        with rejected_as(ENCODING_FAILED):
            for encoder in self._encoders:
                encoder.flush()
        self._check_decoded()

    def _take_frame(self, frame: VideoFrame) -> None:
        self._retime(frame)
        assert frame.pts is not None
        keyframe = self._schedule.due(float(frame.pts * self._time_base))
        for encoder in self._encoders:
            encoder.encode(frame, keyframe)
        self.frames += 1


def _rendition(
    path: Path, width: int, height: int, *, remuxed: bool, dropped_packets: int = 0
) -> Rendition:
    """Describe a written rendition from its file."""
    init_size, fragments = read_fragments(path)
    duration = sum(fragment.duration for fragment in fragments)
    size = path.stat().st_size
    # A short last fragment (one keyframe and little else) is no rate to plan for.
    timed = [f for f in fragments if f.duration >= _PEAK_MIN_SECONDS] or fragments
    peak = max((8 * f.size / f.duration for f in timed if f.duration > 0), default=0.0)
    carried = sum(fragment.size for fragment in fragments)
    return Rendition(
        height=height,
        width=width,
        path=path,
        codecs=_codecs(path),
        bandwidth=round(peak),
        average_bandwidth=round(8 * carried / duration) if duration > 0 else 0,
        init_size=init_size,
        fragments=tuple(fragments),
        duration_seconds=duration,
        remuxed=remuxed,
        size_in_bytes=size,
        dropped_packets=dropped_packets,
    )


def _codecs(path: Path) -> str:
    """RFC 6381 codec strings of a rendition's H.264 video and AAC audio, from their
    decoder configurations: `avc1.` and the `avcC`'s profile, constraints and level;
    `mp4a.40.` and the AudioSpecificConfig's object type (2: AAC-LC)."""
    with open_source(path) as container:
        video = video_stream_of(container)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        avcc = video.codec_context.extradata or b""
        if len(avcc) < 4 or avcc[0] != 1:
            raise ValueError(f"{path} has no avcC")
        codecs = [f"avc1.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"]
        for audio in container.streams.audio[:1]:
            config = audio.codec_context.extradata or b""
            object_type = config[0] >> 3 if config else 2
            if object_type == 31 and len(config) > 1:  # escape: 32 + the next 6 bits
                object_type = 32 + ((config[0] & 0x07) << 3 | config[1] >> 5)
            codecs.append(f"mp4a.40.{object_type}")
    return ",".join(codecs)


def _bitrate(name: int) -> int:
    if name in _BITRATES:
        return _BITRATES[name]
    nearest = min(_BITRATES, key=lambda listed: (abs(listed - name), listed))
    return round(_BITRATES[nearest] * (name / nearest) ** 2)
