"""Test media made with PyAV on the spot: clips, audio-only files, stills, garbage, and
damaged copies of clips (truncated, corrupted packets, lying headers, polyglots).

Pictures come from FFmpeg's own test sources run through PyAV filter graphs:
`testsrc2` (colour bars and moving shapes, mean luma around 120), `corner` (a white
top-left quadrant on black, to see which way a picture was turned) or `black`. Audio is
a sine.

`make_indexed_clip` writes clips for checking cuts: every frame shows its own index as
black and white blocks (`frame_index` reads it back), and the audio beeps at every
whole second (`audio_onset` finds the first beep).
"""

from __future__ import annotations

import io
import math
import random
import struct
import zipfile
from array import array
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.packet import Packet
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

Pattern = Literal["testsrc", "corner", "black"]
#: A generator that writes a file at the path it is given and returns that path.
Maker = Callable[[Path], Path]

_PATTERN_FILTERS: dict[str, list[tuple[str, str | None]]] = {
    "testsrc": [("testsrc2", "size={w}x{h}:rate={fps}")],
    "corner": [
        ("color", "c=black:size={w}x{h}:rate={fps}"),
        ("drawbox", "x=0:y=0:w=iw/2:h=ih/2:color=white:t=fill"),
    ],
    "black": [("color", "c=black:size={w}x{h}:rate={fps}")],
}


def make_clip(
    path: Path,
    *,
    seconds: float = 2.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    video_codec: str = "libx264",
    container: str | None = None,
    audio: bool = True,
    audio_codec: str = "aac",
    rotation: int = 0,
    pix_fmt: str = "yuv420p",
    first_frames_black: int = 0,
    pattern: Pattern = "testsrc",
    intro: tuple[Pattern, int] | None = None,
    faststart: bool = False,
    live: bool = False,
    video_options: dict[str, str] | None = None,
    start_seconds: float = 0.0,
) -> Path:
    """Write a clip; the container follows `path`'s suffix unless `container` is given.

    `rotation` is the clockwise turn a player must apply (as `MediaInfo.rotation`); it is
    written as the stream's display matrix, which PyAV 18 takes counter-clockwise.
    `start_seconds` shifts every timestamp, as in a recording cut out of a broadcast.
    `intro=(pattern, n)` draws the first `n` frames in another pattern;
    `first_frames_black=n` is `intro=("black", n)`. `live` writes Matroska/WebM as a
    stream, with no duration in its header (as a browser's MediaRecorder does).
    """
    intro_pattern, intro_frames = intro or ("black", first_frames_black)
    frame_count = round(seconds * fps)
    options = {"movflags": "+faststart"} if faststart else {}
    if live:
        options["live"] = "1"
    with av.open(str(path), "w", format=container, options=options) as output:
        video = output.add_stream(video_codec, rate=fps, options=video_options or {})
        assert isinstance(video, VideoStream)
        video.width, video.height = size
        video.pix_fmt = pix_fmt
        if rotation:
            video.set_display_rotation(-rotation)
        sound = output.add_stream(audio_codec, rate=48_000) if audio else None
        if sound is not None:
            assert isinstance(sound, AudioStream)
            sound.layout = "stereo"

        opening = next(_pictures(intro_pattern, size, fps, pix_fmt, 1))
        for index, picture in enumerate(_pictures(pattern, size, fps, pix_fmt, frame_count)):
            if index < intro_frames:
                picture = opening
            picture.pts = index + round(start_seconds * fps)
            # Source filters mark every frame as I and libx264 obeys: let it choose.
            picture.pict_type = PictureType.NONE
            picture.time_base = Fraction(1, fps)
            output.mux(video.encode(picture))
        output.mux(video.encode(None))

        if sound is not None:
            for chunk in _sine(seconds):
                chunk.pts = (chunk.pts or 0) + round(start_seconds * chunk.sample_rate)
                output.mux(sound.encode(chunk))
            output.mux(sound.encode(None))
    return path


def make_two_part_clip(path: Path) -> Path:
    """A 3.5 s 720p clip, lossless so that it is bigger than one part of a resumable
    upload in the tests (5 MiB) and within their upload limit (8 MiB)."""
    return make_clip(
        path, seconds=3.5, size=(1280, 720), video_options={"qp": "0", "preset": "ultrafast"}
    )


#: Blocks across and down that draw a frame's index, one bit each (row by row, lowest
#: bit first): up to 4095 frames.
INDEX_GRID = (4, 3)
#: A VFR clip's frame spacing, in milliseconds, repeated: 25 fps on average.
VFR_PATTERN_MS = (40, 20, 60)
BEEP_SECONDS = 0.1
BEEP_AMPLITUDE = 0.5


def indexed_frame_times(seconds: float, fps: int = 25, *, vfr: bool = False) -> list[Fraction]:
    """When each frame of a `make_indexed_clip` clip is shown, in seconds."""
    times: list[Fraction] = []
    time = Fraction(0)
    while time < Fraction(seconds).limit_denominator(1000):
        times.append(time)
        if vfr:
            time += Fraction(VFR_PATTERN_MS[len(times) % len(VFR_PATTERN_MS)], 1000)
        else:
            time += Fraction(1, fps)
    return times


def make_indexed_clip(
    path: Path,
    *,
    seconds: float = 4.0,
    fps: int = 25,
    gop: int = 25,
    bframes: int = 0,
    vfr: bool = False,
    size: tuple[int, int] = (160, 120),
    audio_seconds: float | None = None,
    container: str | None = None,
    open_gop: bool = False,
) -> Path:
    """A clip whose frame `i` shows `i` in blocks, with a keyframe every `gop` frames.

    `bframes` B-frames in a fixed pattern (x264's `b-adapt=0`); `open_gop`: keyframes
    after the first are recovery points whose leading B-frames refer to the group
    before (x264's `open-gop`). `vfr` shows the frames
    at irregular times (`VFR_PATTERN_MS`, time base 1/1000) instead of every 1/`fps` s;
    `indexed_frame_times` says when. The AAC audio (`audio_seconds` long, the clip's
    length unless given, 0 for none) is silent but for a 440 Hz beep of `BEEP_SECONDS`
    starting at every whole second.
    """
    times = indexed_frame_times(seconds, fps, vfr=vfr)
    time_base = Fraction(1, 1000) if vfr else Fraction(1, fps)
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:b-adapt=0"
    if open_gop:
        params += ":open-gop=1"
    audio_seconds = seconds if audio_seconds is None else audio_seconds
    with av.open(str(path), "w", format=container) as output:
        video = output.add_stream("libx264", rate=fps, options={"x264-params": params})
        assert isinstance(video, VideoStream)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = time_base
        sound = output.add_stream("aac", rate=48_000) if audio_seconds > 0 else None
        for index, time in enumerate(times):
            picture = _index_picture(index, size)
            picture.pts = int(time / time_base)
            picture.time_base = time_base
            output.mux(video.encode(picture))
        output.mux(video.encode(None))
        if sound is not None:
            assert isinstance(sound, AudioStream)
            for chunk in _beeps(audio_seconds):
                output.mux(sound.encode(chunk))
            output.mux(sound.encode(None))
    return path


def frame_index(frame: VideoFrame) -> int:
    """The index a `make_indexed_clip` frame shows (at any size, but upright)."""
    gray = frame.reformat(format="gray")
    plane = gray.planes[0]
    data = bytes(plane)
    columns, rows = INDEX_GRID
    index = 0
    for bit in range(columns * rows):
        row, column = divmod(bit, columns)
        # The middle half of the block, away from edges blurred by scaling and coding.
        x0 = (4 * column + 1) * gray.width // (4 * columns)
        x1 = (4 * column + 3) * gray.width // (4 * columns)
        y0 = (4 * row + 1) * gray.height // (4 * rows)
        y1 = (4 * row + 3) * gray.height // (4 * rows)
        total = sum(
            sum(data[y * plane.line_size + x0 : y * plane.line_size + x1]) for y in range(y0, y1)
        )
        if total / ((x1 - x0) * (y1 - y0)) > 128:
            index |= 1 << bit
    return index


def audio_onset(path: Path, threshold: float = BEEP_AMPLITUDE / 2) -> float | None:
    """Seconds from the first audio sample to the first one louder than `threshold`
    (of full scale), counted in decoded samples, or None if none is."""
    with av.open(str(path)) as source:
        stream = source.streams.audio[0]
        resampler = AudioResampler(format="s16", layout="mono", rate=stream.sample_rate)
        limit = threshold * 32767
        position = 0
        for frame in source.decode(stream):
            for mono in resampler.resample(frame):
                samples = array("h", bytes(mono.planes[0])[: 2 * mono.samples])
                for offset, sample in enumerate(samples):
                    if abs(sample) > limit:
                        return (position + offset) / stream.sample_rate
                position += mono.samples
    return None


def make_audio_only(path: Path, *, seconds: float = 2.0, codec: str = "aac") -> Path:
    """AAC in `.m4a` or Opus in `.ogg` (whatever `path` and `codec` say), no video."""
    with av.open(str(path), "w") as output:
        sound = output.add_stream(codec, rate=48_000)
        assert isinstance(sound, AudioStream)
        for chunk in _sine(seconds):
            output.mux(sound.encode(chunk))
        output.mux(sound.encode(None))
    return path


#: The still-picture encoders `make_still_image` knows, with the pixel format each takes.
_STILL_PIXEL_FORMATS = {"mjpeg": "yuvj420p", "png": "rgb24"}


def make_still_image(
    path: Path, size: tuple[int, int] = (320, 240), codec: Literal["mjpeg", "png"] = "mjpeg"
) -> Path:
    """A single JPEG (or PNG) picture, written by FFmpeg's image2 muxer."""
    pixel_format = _STILL_PIXEL_FORMATS[codec]
    with av.open(str(path), "w", format="image2") as output:
        stream = output.add_stream(codec, rate=1)
        stream.width, stream.height = size
        stream.pix_fmt = pixel_format
        picture = next(_pictures("testsrc", size, 1, pixel_format, 1))
        picture.pts = 0
        output.mux(stream.encode(picture))
        output.mux(stream.encode(None))
    return path


def make_text_file(path: Path) -> Path:
    """Plain text (FFmpeg would happily read it as ANSI art)."""
    path.write_text("These are not the frames you are looking for.\n" * 200)
    return path


def make_empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def make_random_bytes(path: Path, size: int = 64 * 1024, seed: int = 7) -> Path:
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """A copy of `src` with only its first `fraction` of bytes (an interrupted upload)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def zero_media_data(src: Path, dst: Path) -> Path:
    """A copy of an MP4 whose `mdat` payload is zeroed: intact metadata, no pictures."""
    data = bytearray(src.read_bytes())
    start = data.index(b"mdat") + 4
    if data.index(b"moov") > start:
        raise ValueError("write the source with faststart, so moov comes before mdat")
    data[start:] = bytes(len(data) - start)
    dst.write_bytes(bytes(data))
    return dst


def corrupt_packets(src: Path, dst: Path, indices: list[int], seed: int = 1) -> Path:
    """A copy of `src` whose video packets number `indices` (in file order) have half
    their bytes, from the 17th on, overwritten with noise; the container is untouched.
    In an H.264 MP4 the NAL length and header survive and the slice header is garbage,
    so the decoder fails on each such packet (noise further in would be concealed)."""
    data = bytearray(src.read_bytes())
    noise = random.Random(seed)
    with av.open(str(src)) as source:
        packets = [(p.pos, p.size) for p in source.demux(video=0) if p.size]
    for index in indices:
        position, size = packets[index]
        assert position is not None
        start = position + min(16, size // 4)
        data[start : start + size // 2] = noise.randbytes(size // 2)
    dst.write_bytes(bytes(data))
    return dst


def claim_duration(src: Path, dst: Path, seconds: float) -> Path:
    """A copy of a Matroska/WebM file whose Segment header claims `seconds`, whatever its
    data holds (FFmpeg trusts that claim; it measures an MP4's from its sample tables)."""
    data = bytearray(src.read_bytes())
    # The Duration element: ID 0x4489, then its size (0x88: an 8-byte float), in units
    # of the TimestampScale FFmpeg writes (1 ms).
    at = data.index(b"\x44\x89\x88") + 3
    data[at : at + 8] = struct.pack(">d", seconds * 1000)
    dst.write_bytes(bytes(data))
    with av.open(str(dst)) as check:
        assert check.duration == round(seconds * av.time_base), "the claim did not take"
    return dst


def add_subtitles(src: Path, dst: Path, cues: list[tuple[float, float, str]]) -> Path:
    """`src`'s streams copied into a Matroska file with a SubRip stream of `cues` (start
    and end in seconds, text), interleaved by time."""
    srt = dst.with_suffix(".srt")
    srt.write_text(
        "".join(
            f"{number}\n{_srt_time(start)} --> {_srt_time(end)}\n{text}\n\n"
            for number, (start, end, text) in enumerate(cues, start=1)
        )
    )
    with (
        av.open(str(src)) as source,
        av.open(str(srt)) as subtitles,
        av.open(str(dst), "w", format="matroska") as output,
    ):
        targets = {s.index: output.add_stream_from_template(s) for s in source.streams}
        subtitle_stream = output.add_stream_from_template(subtitles.streams[0])
        pending = [p for p in subtitles.demux() if p.size]
        for packet in source.demux():
            if packet.dts is None:
                continue
            while pending and _seconds(pending[0]) <= _seconds(packet):
                cue = pending.pop(0)
                cue.stream = subtitle_stream
                output.mux(cue)
            packet.stream = targets[packet.stream_index]
            output.mux(packet)
        for cue in pending:
            cue.stream = subtitle_stream
            output.mux(cue)
    return dst


def prepend(head: Path, body: Path, dst: Path) -> Path:
    """`head`'s bytes followed by `body`'s: a polyglot such as a JPEG with an MP4 after."""
    dst.write_bytes(head.read_bytes() + body.read_bytes())
    return dst


def append_zip(src: Path, dst: Path) -> Path:
    """`src` with a ZIP archive appended (a polyglot that unzips as well as it plays)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "not a video\n" * 50)
    dst.write_bytes(src.read_bytes() + archive.getvalue())
    return dst


def atom_offsets(path: Path) -> dict[str, int]:
    """Byte offsets of the top-level MP4 atoms, by type."""
    data = path.read_bytes()
    offsets: dict[str, int] = {}
    position = 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8].decode("latin-1")
        offsets.setdefault(kind, position)
        if size == 1:
            size = int.from_bytes(data[position + 8 : position + 16], "big")
        if size < 8:
            break
        position += size
    return offsets


def decode_all(path: Path) -> list[VideoFrame]:
    """Every video frame of a file."""
    with av.open(str(path)) as source:
        return list(source.decode(video=0))


def packet_payloads(path: Path, kind: Literal["video", "audio"]) -> list[bytes]:
    """The bytes of every packet of a file's first video or audio stream, in file order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        return [bytes(packet) for packet in container.demux(stream) if packet.size]


def keyframe_seconds(path: Path) -> list[float]:
    """When a file's video keyframes are shown, in seconds, in order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        return sorted(
            float(packet.pts * stream.time_base)
            for packet in container.demux(stream)
            if packet.is_keyframe and packet.pts is not None
        )


def decoded_audio_seconds(path: Path) -> float:
    """How long a file's first audio stream lasts, counted in decoded samples."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.sample_rate


def region_luma(frame: VideoFrame, left: float, top: float, right: float, bottom: float) -> float:
    """Mean luma of a rectangle given as fractions of the picture."""
    gray = frame.reformat(format="gray")
    plane = gray.planes[0]
    data = bytes(plane)
    x0, x1 = int(gray.width * left), int(gray.width * right)
    y0, y1 = int(gray.height * top), int(gray.height * bottom)
    total = sum(
        sum(data[y * plane.line_size + x0 : y * plane.line_size + x1]) for y in range(y0, y1)
    )
    return total / ((x1 - x0) * (y1 - y0))


def bright_corner(frame: VideoFrame) -> str:
    """Which quadrant of the picture is the brightest: "top-left", "bottom-right"..."""
    quadrants = {
        f"{vertical}-{horizontal}": region_luma(frame, left, top, left + 0.5, top + 0.5)
        for vertical, top in (("top", 0.0), ("bottom", 0.5))
        for horizontal, left in (("left", 0.0), ("right", 0.5))
    }
    return max(quadrants, key=lambda name: quadrants[name])


def _srt_time(seconds: float) -> str:
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d},{rest % 1000:03d}"


def _seconds(packet: Packet[Stream]) -> float:
    assert packet.dts is not None
    assert packet.time_base is not None
    return float(packet.dts * packet.time_base)


def _pictures(
    pattern: str, size: tuple[int, int], fps: int, pix_fmt: str, count: int
) -> Iterator[VideoFrame]:
    graph = av.filter.Graph()
    width, height = size
    chain = [
        graph.add(name, None if args is None else args.format(w=width, h=height, fps=fps))
        for name, args in _PATTERN_FILTERS[pattern]
    ]
    chain.append(graph.add("format", pix_fmt))
    chain.append(graph.add("buffersink"))
    graph.link_nodes(*chain)
    graph.configure()
    for _ in range(count):
        frame = chain[-1].pull()
        assert isinstance(frame, VideoFrame)
        yield frame


def _index_picture(index: int, size: tuple[int, int]) -> VideoFrame:
    width, height = size
    columns, rows = INDEX_GRID
    picture = VideoFrame(width, height, "gray")
    line_size = picture.planes[0].line_size
    lines = []
    for row in range(rows):
        line = bytearray(line_size)
        for x in range(width):
            if index >> (row * columns + x * columns // width) & 1:
                line[x] = 255
        lines.extend([bytes(line)] * (height * (row + 1) // rows - height * row // rows))
    picture.planes[0].update(b"".join(lines))
    return picture.reformat(format="yuv420p")


def _beeps(seconds: float, rate: int = 48_000) -> Iterator[AudioFrame]:
    """Mono s16 silence with a 440 Hz beep at every whole second."""
    total = round(seconds * rate)
    beep = round(BEEP_SECONDS * rate)
    for first in range(0, total, 1024):
        count = min(1024, total - first)
        samples = array("h", bytes(2 * count))
        for offset in range(count):
            n = first + offset
            if n % rate < beep:
                samples[offset] = round(
                    BEEP_AMPLITUDE * 32767 * math.sin(2 * math.pi * 440 * n / rate)
                )
        chunk = AudioFrame(format="s16", layout="mono", samples=count)
        chunk.planes[0].update(samples.tobytes())
        chunk.sample_rate = rate
        chunk.pts = first
        chunk.time_base = Fraction(1, rate)
        yield chunk


def _sine(seconds: float, rate: int = 48_000) -> Iterator[AudioFrame]:
    graph = av.filter.Graph()
    source = graph.add("sine", f"frequency=440:sample_rate={rate}:duration={seconds}")
    sink = graph.add("abuffersink")
    graph.link_nodes(source, sink)
    graph.configure()
    while True:
        try:
            frame = sink.pull()
        except av.EOFError:
            return
        assert isinstance(frame, AudioFrame)
        yield frame
