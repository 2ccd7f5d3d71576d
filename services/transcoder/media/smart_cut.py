"""The smart cut: the same clip as `cut.cut`, with the source's whole groups of pictures
copied untouched and only the edges re-encoded.

The clip `[start, start + duration)` of an H.264 source is written as
- head: from the frame shown at `start` up to the first copied keyframe, re-encoded;
- middle: the source's packets from that keyframe up to the last keyframe at or before
  the span's end, copied byte for byte (whole groups of pictures);
- tail: from that keyframe to the span's end, re-encoded (nothing when the span ends on
  a keyframe or at the end of the video);
- audio: the span re-encoded to AAC, to the sample (`lanes.CutAudioLane`, as `cut`).

Decisions:
- Parameter sets. The copied middle needs the source's SPS/PPS, the re-encoded edges
  libx264's. The edges are encoded with x264's `sps-id` set to ids the source does not
  use (one for the head, one for the tail), with global headers, and the output's `avcC`
  lists every set: the source's and the edges'. Each slice names its own PPS, so the
  stream stays plain `avc1` with all parameter sets out of band, as ISO/IEC 14496-15
  allows (an `avcC` holds several SPS and PPS); no in-band redefinition of an id (what
  smartcut relies on, and what breaks some decoders), no `avc3`. The encoder matches the
  source: size, SAR, profile, level, colour tags, yuv420p; no B-frames.
- Seams are closed: a keyframe is copied only if it is an IDR picture (the SPS switch is
  then legal) with no leading pictures (packets decoded after it but shown before it,
  which reference the group before, as an open GOP's do) and nothing decoded before it
  shown after it. Groups between the two seams are copied whatever they are.
- Timing: the clip starts at the frame shown at `start` (`actual_start`, at most one
  frame earlier than asked; the audio starts there too, so picture and sound stay in
  sync to the sample) and ends at `start + duration`. Presentation times keep their
  distance from the first frame; decoding times are made anew for the whole clip:
  the middle's are its presentation times in order, all shifted back by the middle's
  reordering delay, and the edges' (no B-frames) are their presentation times shifted
  by the same delay, so decoding times increase strictly across the seams, with no gap.
- When the source cannot be copied safely (another codec, not 8-bit 4:2:0 limited range,
  rotated, taller than the playback limit, odd dimensions, another container, parameter
  sets changing midway, no closed keyframe that makes a whole group of pictures inside
  the span), the clip is `cut.cut`'s full re-encode, and `CutResult.reencode_reason`
  says why.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.codec.context import Flags
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.codeccontext import VideoCodecContext
from av.video.stream import VideoStream

from services.transcoder.media.cut import CutResult, check_span, cut, seek_target_for
from services.transcoder.media.errors import ENCODING_FAILED, VIDEO_CORRUPT, rejected_as
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
    open_source,
    video_stream_of,
)
from services.transcoder.media.progress import Meter, Progress

#: Demuxer names (in FFmpeg's comma-separated list) whose H.264 packets are copied.
_COPYABLE_CONTAINERS = frozenset({"mov", "mp4", "matroska", "mpegts"})
_NAL_IDR, _NAL_SPS, _NAL_PPS = 5, 7, 8
#: x264's `sps-id` range.
_MAX_SPS_ID = 31
#: FFmpeg's profile names → x264's (8-bit 4:2:0 only).
_X264_PROFILES = {
    "Constrained Baseline": "baseline",
    "Baseline": "baseline",
    "Main": "main",
    "High": "high",
}
#: The edges are a few frames each: encode them better than the profile's CRF, so they
#: stand next to the copied source pictures.
_EDGE_CRF_GAIN = 5
#: ... and with a faster preset than the profile's: at the same CRF x264's faster presets
#: spend more bits, not less quality (measured on the benchmark's 720p source: worst
#: edge frame 51 dB at `superfast` against 45 dB at `veryfast`, 10 % less time for the
#: whole 30 s cut). A few frames' size does not matter; their look and speed do.
_EDGE_PRESET = "superfast"


@dataclass(frozen=True)
class _Layout:
    """The source's video packets, read once without decoding."""

    time_base: Fraction
    #: Where the container's timeline starts, in seconds.
    origin: float
    #: Presentation times (video ticks) in decoding order, and which are keyframes.
    pts: list[int]
    keyframes: list[bool]
    #: Keyframe presentation time → it starts a closed group of pictures.
    clean: dict[int, bool]
    #: Where the last frame stops showing (video ticks).
    end: int
    #: NAL length size of the packets (None: Annex B start codes).
    length_size: int | None
    sps: dict[int, bytes]
    pps: dict[int, bytes]


@dataclass(frozen=True)
class _Plan:
    """What is copied: the packets from one keyframe to another, in decoding order."""

    #: Video ticks of the source's timeline.
    shown: int
    end: int
    copy_from: int
    #: The keyframe that starts the tail; None: the copy runs to the end of the video.
    copy_until: int | None
    #: The middle's presentation times in order, and its reordering delay (ticks).
    middle_pts: list[int]
    delay: int

    @property
    def copy_end(self) -> int:
        """Where the copied pictures stop showing."""
        return self.end if self.copy_until is None else self.copy_until


def smart_cut(
    src: Path,
    dst: Path,
    start_seconds: float,
    duration_seconds: float,
    info: MediaInfo,
    profile: PlaybackProfile,
    progress: Progress | None = None,
) -> CutResult:
    """Write `[start, start + duration)` of the video at `src` (probed as `info`) to
    `dst`, copying the source's whole groups of pictures where it safely can.

    Refuses what `cut.cut` refuses, the same way; `CutResult.method` says which way
    the clip was made, `actual_start` where it starts.
    """
    check_span(start_seconds, duration_seconds, info)
    reason = why_not_copied(info, profile)
    plan: _Plan | None = None
    if reason is None:
        layout_or_reason = _read_layout(src)
        if isinstance(layout_or_reason, str):
            reason = layout_or_reason
        else:
            layout = layout_or_reason
            plan_or_reason = _plan(layout, start_seconds, duration_seconds)
            if isinstance(plan_or_reason, str):
                reason = plan_or_reason
            else:
                plan = plan_or_reason
    if plan is None:
        result = cut(src, dst, start_seconds, duration_seconds, info, profile, progress)
        return dataclasses.replace(result, reencode_reason=reason)
    return _write_smart(src, dst, info, profile, layout, plan, progress)


def why_not_copied(info: MediaInfo, profile: PlaybackProfile) -> str | None:
    """Why the source's packets cannot go into the clip as they are; None if they can."""
    if info.video_codec != "h264":
        return f"{info.video_codec} video is re-encoded: only H.264 is copied"
    if info.pixel_format != "yuv420p":
        return f"pixel format {info.pixel_format}: only 8-bit 4:2:0 (yuv420p) is copied"
    if info.rotation:
        return "rotated video is turned upright"
    if info.height > profile.max_height:
        return f"height {info.height} is above the playback limit of {profile.max_height}"
    if info.width % 2 or info.height % 2:
        return f"odd dimensions {info.width}x{info.height}"
    if _COPYABLE_CONTAINERS.isdisjoint(info.container.split(",")):
        return f"container {info.container}: only MP4/MOV, Matroska and MPEG-TS are copied"
    return None


def _write_smart(
    src: Path,
    dst: Path,
    info: MediaInfo,
    profile: PlaybackProfile,
    layout: _Layout,
    plan: _Plan,
    progress: Progress | None,
) -> CutResult:
    time_base, origin = layout.time_base, layout.origin
    actual_start = float(plan.shown * time_base) - origin
    seek_target = seek_target_for(src, max(0.0, actual_start), info)
    with (
        removed_on_failure(dst),
        open_source(src) as source,
        own_audio_stream(src, info, seek_target) as audio,
    ):
        video = video_stream_of(source)
        assert video is not None
        span = Span(start=float(plan.shown * time_base), end=float(plan.end * time_base))
        meter = Meter(progress, span.start, span.end)
        if seek_target is not None:
            with rejected_as(VIDEO_CORRUPT):
                source.seek(seek_target, stream=video, backward=True)
        with playback_container(dst) as output:
            video_lane = _SmartVideoLane(
                video,
                span,
                output,
                info,
                profile,
                layout=layout,
                plan=plan,
                from_keyframe=seek_target is not None,
            )
            audio_lane = CutAudioLane(audio, span, output, profile) if audio else None
            dropped = encode_lanes(source, video_lane, audio_lane, meter.at)
    meter.done()
    return CutResult(
        duration_seconds=video_lane.duration_seconds,
        frames=video_lane.frames,
        has_audio=audio_lane is not None and audio_lane.samples > 0,
        decoded_frames=video_lane.decoded_frames,
        dropped_packets=dropped,
        actual_start=max(0.0, actual_start),
        actual_duration=video_lane.duration_seconds,
        method="smart",
        copied_packets=video_lane.copied_packets,
    )


def _read_layout(src: Path) -> _Layout | str:
    """The source's packets' times, keyframes and parameter sets, or why they cannot be
    copied."""
    with open_source(src) as source:
        video = video_stream_of(source)
        if video is None or video.time_base is None:
            return "the video has no time base"
        # Read while the file is open: the stream's fields are freed with it.
        time_base = video.time_base
        origin = (source.start_time or 0) / av.time_base
        extradata = video.codec_context.extradata or b""
        length_size = (extradata[4] & 3) + 1 if extradata[:1] == b"\x01" else None
        sps: dict[int, bytes] = {}
        pps: dict[int, bytes] = {}
        if not _collect_sets(_config_nals(extradata), sps, pps):
            return "the source's parameter sets conflict"
        rate = video.average_rate or video.guessed_rate
        frame_ticks = max(1, round(1 / (rate * video.time_base))) if rate else 1
        pts: list[int] = []
        keyframes: list[bool] = []
        idr: dict[int, bool] = {}
        end = 0
        with rejected_as(VIDEO_CORRUPT):
            for packet in source.demux(video):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return "video packets without timestamps"
                pts.append(packet.pts)
                keyframes.append(packet.is_keyframe)
                end = max(end, packet.pts + (packet.duration or frame_ticks))
                if packet.is_keyframe:
                    nals = _nal_units(bytes(packet), length_size)
                    idr[packet.pts] = any(_nal_type(nal) == _NAL_IDR for nal in nals)
                    if not _collect_sets(nals, sps, pps):
                        return "the parameter sets change within the video"
    if not sps or not pps:
        return "the source's parameter sets were not found"
    if len(_free_ids(sps, pps)) < 2:
        return "the source uses every parameter set id"
    clean = {}
    starts = [index for index, key in enumerate(keyframes) if key] + [len(pts)]
    for previous, at, following in zip([0, *starts], starts, starts[1:], strict=False):
        key = pts[at]
        clean[key] = (
            idr[key]
            and all(shown > key for shown in pts[at + 1 : following])
            and all(shown < key for shown in pts[previous:at])
        )
    return _Layout(time_base, origin, pts, keyframes, clean, end, length_size, sps, pps)


def _plan(layout: _Layout, start_seconds: float, duration_seconds: float) -> _Plan | str:
    """Which packets of the span are copied, or why none are."""
    origin, time_base = layout.origin, layout.time_base
    start = round((origin + start_seconds) / time_base)
    end = round((origin + start_seconds + duration_seconds) / time_base)
    shown = max((pts for pts in layout.pts if pts <= start), default=min(layout.pts))
    keys = [pts for pts, key in zip(layout.pts, layout.keyframes, strict=True) if key]
    copy_from = next((key for key in sorted(keys) if key >= shown and layout.clean[key]), None)
    boundaries = sorted(key for key in keys if layout.clean[key])
    candidates = [key for key in boundaries if copy_from is not None and copy_from < key <= end]
    copy_until: int | None = candidates[-1] if candidates else None
    runs_to_end = layout.end <= end
    if copy_from is not None and runs_to_end:
        copy_until = None
    elif copy_from is None or copy_until is None:
        if any(shown < key < end and not layout.clean[key] for key in keys):
            return "open GOPs: no keyframe in the span starts a closed group of pictures"
        return "no whole group of pictures in the span"
    first = _decode_index(layout, copy_from)
    last = len(layout.pts) if copy_until is None else _decode_index(layout, copy_until)
    in_order = layout.pts[first:last]
    middle_pts = sorted(in_order)
    delay = max([0, *(ordered - pts for ordered, pts in zip(middle_pts, in_order, strict=True))])
    return _Plan(
        shown=shown,
        end=min(end, layout.end),
        copy_from=copy_from,
        copy_until=copy_until,
        middle_pts=middle_pts,
        delay=delay,
    )


def _decode_index(layout: _Layout, keyframe_pts: int) -> int:
    return next(
        index
        for index, (pts, key) in enumerate(zip(layout.pts, layout.keyframes, strict=True))
        if key and pts == keyframe_pts
    )


class _SmartVideoLane(CutVideoLane):
    """`CutVideoLane` for the head and the tail, packet copying in between."""

    def __init__(
        self,
        stream: VideoStream,
        span: Span,
        output: OutputContainer,
        info: MediaInfo,
        profile: PlaybackProfile,
        *,
        layout: _Layout,
        plan: _Plan,
        from_keyframe: bool,
    ) -> None:
        self._layout = layout
        self._plan = plan
        super().__init__(stream, span, output, info, profile, from_keyframe=from_keyframe)
        self._phase = "head"
        #: Packets copied so far.
        self.copied_packets = 0

    def _open_encoder(
        self,
        output: OutputContainer,
        rate: Fraction,
        width: int,
        height: int,
        profile: PlaybackProfile,
    ) -> VideoCodecContext:
        """The head's encoder; the tail's is made alongside, and the output stream that
        copies the source's settings, with every parameter set in its `avcC`."""
        self._copy_stream = output.add_stream_from_template(self.stream)
        self._copy_stream.time_base = self._time_base
        self._copy_stream.codec_context.codec_tag = "avc1"
        free = _free_ids(self._layout.sps, self._layout.pps)
        head = self._edge_encoder(rate, profile, free[0])
        self._tail_encoder = self._edge_encoder(rate, profile, free[1])
        sets = [list(self._layout.sps.values()), list(self._layout.pps.values())]
        for encoder in (head, self._tail_encoder):
            sps: dict[int, bytes] = {}
            pps: dict[int, bytes] = {}
            _collect_sets(_config_nals(encoder.extradata or b""), sps, pps)
            sets[0] += sps.values()
            sets[1] += pps.values()
        self._copy_stream.codec_context.extradata = _avcc(*sets)
        return head

    def _edge_encoder(
        self, rate: Fraction, profile: PlaybackProfile, ids: int
    ) -> VideoCodecContext:
        """libx264 set up as the source was encoded, its parameter sets numbered `ids`."""
        source = self.stream.codec_context
        encoder = av.CodecContext.create("libx264", "w")
        assert isinstance(encoder, VideoCodecContext)
        encoder.width, encoder.height = source.width, source.height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = self._time_base
        encoder.framerate = rate
        if self.stream.sample_aspect_ratio is not None:
            encoder.sample_aspect_ratio = self.stream.sample_aspect_ratio
        encoder.color_range = source.color_range
        encoder.color_primaries = source.color_primaries
        encoder.color_trc = source.color_trc
        encoder.colorspace = source.colorspace
        encoder.flags |= Flags.global_header
        encoder.thread_type = "FRAME"
        encoder.thread_count = profile.threads
        level = next(iter(self._layout.sps.values()))[3]
        options = {
            "crf": str(max(0, profile.crf - _EDGE_CRF_GAIN)),
            "preset": _EDGE_PRESET,
            "level": str(level),
            "x264-params": f"sps-id={ids}:bframes=0",
        }
        if source.profile in _X264_PROFILES:
            options["profile"] = _X264_PROFILES[source.profile]
        encoder.options = options
        encoder.open()
        return encoder

    def feed(self, packet: Packet[Stream]) -> None:
        plan = self._plan
        if self._phase == "head" and packet.is_keyframe and packet.pts == plan.copy_from:
            self._end_head()
        if self._phase == "middle":
            if packet.is_keyframe and packet.pts == plan.copy_until:
                self._start_tail()
            else:
                self._copy(packet)
                return
        if not self.done:
            super().feed(packet)

    def finish(self) -> None:
        if self._phase == "head":
            super().finish()  # the copy never started: a truncated source
        elif self._phase == "tail" and self.decoded_frames > 0:
            super().finish()

    def _end_head(self) -> None:
        """Write the head's last frames, shown until the first copied keyframe."""
        self._take(self._decode(None))
        with rejected_as(ENCODING_FAILED):
            if self._held is not None:
                held, self._held = self._held, None
                self._write_until(held, self._plan.copy_from)
        self._flush_encoder()
        self.stream.codec_context.flush_buffers()
        self._phase = "middle"

    def _start_tail(self) -> None:
        assert self._plan.copy_until is not None
        self._end_pts = max(self._end_pts, self._plan.copy_until - self._offset)
        self._encoder = self._tail_encoder
        self._phase = "tail"
        if self._plan.copy_until >= self._end:
            self._done = True

    def _copy(self, packet: Packet[Stream]) -> None:
        """Copy one packet of the middle, its NAL units as they are."""
        assert packet.pts is not None
        data = bytes(packet)
        if self._layout.length_size != 4:
            data = _length_prefixed(_nal_units(data, self._layout.length_size))
        plan = self._plan
        copied = Packet(data)
        index = min(self.copied_packets, len(plan.middle_pts) - 1)
        copied.pts = pts = packet.pts - self._offset
        copied.dts = plan.middle_pts[index] - self._offset - plan.delay
        # Shown until the next picture, the last one until the copy's end.
        after = bisect.bisect_right(plan.middle_pts, packet.pts)
        until = plan.middle_pts[after] if after < len(plan.middle_pts) else plan.copy_end
        copied.duration = duration = max(1, until - packet.pts)
        copied.time_base = self._time_base
        copied.is_keyframe = packet.is_keyframe
        copied.stream = self._copy_stream
        with rejected_as(ENCODING_FAILED):
            self._output.mux(copied)
        self.copied_packets += 1
        self.frames += 1
        self._last_pts = pts if self._last_pts is None else max(self._last_pts, pts)
        self._end_pts = max(self._end_pts, pts + duration)

    def _mux(self, packets: list[Packet[Stream]]) -> None:
        """The edges' packets, length-prefixed without their parameter sets (they are in
        the `avcC`), decoded `delay` before they show, as the middle's are."""
        super()._mux([self._restamped(packet) for packet in packets])

    def _restamped(self, packet: Packet[Stream]) -> Packet[Stream]:
        assert packet.pts is not None
        nals = [
            n for n in _nal_units(bytes(packet), None) if _nal_type(n) not in (_NAL_SPS, _NAL_PPS)
        ]
        restamped = Packet(_length_prefixed(nals))
        restamped.pts = packet.pts
        restamped.dts = packet.pts - self._plan.delay
        restamped.duration = packet.duration
        restamped.time_base = self._time_base
        restamped.is_keyframe = packet.is_keyframe
        restamped.stream = self._copy_stream
        return restamped


def _free_ids(sps: dict[int, bytes], pps: dict[int, bytes]) -> list[int]:
    """The parameter set ids (x264's `sps-id`, for both its SPS and PPS) the source
    does not use."""
    return [n for n in range(_MAX_SPS_ID + 1) if n not in sps and n not in pps]


def _nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F if nal else 0


def _nal_units(data: bytes, length_size: int | None) -> list[bytes]:
    """The NAL units of a packet: length-prefixed (`length_size` bytes) or Annex B."""
    units: list[bytes] = []
    if length_size is not None:
        position = 0
        while position + length_size <= len(data):
            size = int.from_bytes(data[position : position + length_size], "big")
            position += length_size
            units.append(data[position : position + size])
            position += size
        return units
    for chunk in data.split(b"\x00\x00\x01"):
        unit = chunk.rstrip(b"\x00") if chunk.endswith(b"\x00") else chunk
        if unit:
            units.append(unit)
    return units


def _length_prefixed(units: Iterable[bytes]) -> bytes:
    return b"".join(len(unit).to_bytes(4, "big") + unit for unit in units)


def _config_nals(extradata: bytes) -> list[bytes]:
    """The NAL units of a decoder configuration: an `avcC` record or Annex B."""
    if extradata[:1] != b"\x01":
        return _nal_units(extradata, None)
    units: list[bytes] = []
    position = 5
    for count_mask in (0x1F, 0xFF):
        if position >= len(extradata):
            break
        count = extradata[position] & count_mask
        position += 1
        for _ in range(count):
            size = int.from_bytes(extradata[position : position + 2], "big")
            units.append(extradata[position + 2 : position + 2 + size])
            position += 2 + size
    return units


def _collect_sets(units: Iterable[bytes], sps: dict[int, bytes], pps: dict[int, bytes]) -> bool:
    """Add the SPS and PPS among `units` by id; False when one redefines an id."""
    for unit in units:
        kind = _nal_type(unit)
        if kind not in (_NAL_SPS, _NAL_PPS):
            continue
        sets, ident = (sps, _ue(unit, 4)) if kind == _NAL_SPS else (pps, _ue(unit, 1))
        if sets.setdefault(ident, unit) != unit:
            return False
    return True


def _ue(unit: bytes, offset: int) -> int:
    """The Exp-Golomb number starting at byte `offset` of a NAL unit (an id)."""
    payload = unit[offset : offset + 8].replace(b"\x00\x00\x03", b"\x00\x00")
    bits = "".join(f"{byte:08b}" for byte in payload)
    zeros = len(bits) - len(bits.lstrip("0"))
    return int(bits[zeros : 2 * zeros + 1], 2) - 1


def _avcc(sps: list[bytes], pps: list[bytes]) -> bytes:
    """An `AVCDecoderConfigurationRecord` with these parameter sets (the first SPS gives
    profile and level), NAL lengths of 4 bytes."""
    first = sps[0]
    record = bytearray([1, first[1], first[2], first[3], 0xFF, 0xE0 | len(sps)])
    for unit in sps:
        record += len(unit).to_bytes(2, "big") + unit
    record.append(len(pps))
    for unit in pps:
        record += len(unit).to_bytes(2, "big") + unit
    if first[1] not in (66, 77, 88):  # High profiles: 4:2:0, 8 bits, no SPS extensions
        record += bytes([0xFC | 1, 0xF8, 0xF8, 0])
    return bytes(record)
