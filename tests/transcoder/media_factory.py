"""Test media made with PyAV on the spot: clips, audio-only files, stills, garbage.

Pictures come from FFmpeg's own test sources run through PyAV filter graphs:
`testsrc2` (colour bars and moving shapes, mean luma around 120), `corner` (a white
top-left quadrant on black, to see which way a picture was turned) or `black`. Audio is
a sine.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
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
    video_options: dict[str, str] | None = None,
    start_seconds: float = 0.0,
) -> Path:
    """Write a clip; the container follows `path`'s suffix unless `container` is given.

    `rotation` is the clockwise turn a player must apply (as `MediaInfo.rotation`); it is
    written as the stream's display matrix, which PyAV 18 takes counter-clockwise.
    `start_seconds` shifts every timestamp, as in a recording cut out of a broadcast.
    `intro=(pattern, n)` draws the first `n` frames in another pattern;
    `first_frames_black=n` is `intro=("black", n)`.
    """
    intro_pattern, intro_frames = intro or ("black", first_frames_black)
    frame_count = round(seconds * fps)
    options = {"movflags": "+faststart"} if faststart else {}
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


def make_audio_only(path: Path, *, seconds: float = 2.0, codec: str = "aac") -> Path:
    """AAC in `.m4a` or Opus in `.ogg` (whatever `path` and `codec` say), no video."""
    with av.open(str(path), "w") as output:
        sound = output.add_stream(codec, rate=48_000)
        assert isinstance(sound, AudioStream)
        for chunk in _sine(seconds):
            output.mux(sound.encode(chunk))
        output.mux(sound.encode(None))
    return path


def make_still_image(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    """A single JPEG picture (FFmpeg's image2 muxer with the mjpeg encoder)."""
    with av.open(str(path), "w", format="image2") as output:
        stream = output.add_stream("mjpeg", rate=1)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p"
        picture = next(_pictures("testsrc", size, 1, "yuvj420p", 1))
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
