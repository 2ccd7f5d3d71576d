"""Turning decoded pictures upright and to size: the output dimensions and the FFmpeg
filter graph (transpose/flip, scale, pixel format) that produces them.

Shared by the playback transcode, the cut and the thumbnail, with `pull_ready`, which
empties any filter graph's sink.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TypeVar

import av
from av.audio.frame import AudioFrame
from av.filter import Graph
from av.filter.context import FilterContext
from av.video.frame import VideoFrame

_FrameT = TypeVar("_FrameT", VideoFrame, AudioFrame)

#: The filters that turn a picture by a clockwise rotation, as the `ffmpeg` tool does.
_UPRIGHT_FILTERS: dict[int, list[tuple[str, str | None]]] = {
    0: [],
    90: [("transpose", "clock")],
    180: [("hflip", None), ("vflip", None)],
    270: [("transpose", "cclock")],
}


def upright_size(
    width: int, height: int, rotation: int, sample_aspect_ratio: Fraction | None = None
) -> tuple[int, int]:
    """Display size in square pixels once turned upright (90/270 swap the sides)."""
    if sample_aspect_ratio and sample_aspect_ratio > 0 and sample_aspect_ratio != 1:
        width = round(width * sample_aspect_ratio)
    if rotation in (90, 270):
        return height, width
    return width, height


def fit_within(
    width: int, height: int, *, max_width: int | None = None, max_height: int | None = None
) -> tuple[int, int]:
    """Scale down (never up) to fit the bounds keeping the aspect; both sides even."""
    scale = 1.0
    if max_width is not None and width > max_width:
        scale = min(scale, max_width / width)
    if max_height is not None and height > max_height:
        scale = min(scale, max_height / height)
    return _even(width * scale), _even(height * scale)


def _even(size: float) -> int:
    return max(2, int(size + 1e-6) // 2 * 2)


class FrameShaper:
    """Decoded frames in, upright frames of one size and pixel format out.

    The filter graph is built for the first frame's size and format and rebuilt when a
    stream changes resolution midway (the old graph is drained first), as `ffmpeg` does.
    """

    def __init__(
        self, *, rotation: int, width: int, height: int, pixel_format: str, time_base: Fraction
    ) -> None:
        if rotation not in _UPRIGHT_FILTERS:
            raise ValueError(f"rotation must be a quarter turn, not {rotation}")
        self._rotation = rotation
        self._width = width
        self._height = height
        self._pixel_format = pixel_format
        self._time_base = time_base
        self._graph: Graph | None = None
        self._source: FilterContext | None = None
        self._sink: FilterContext | None = None
        self._input_key: tuple[int, int, str] | None = None

    def push(self, frame: VideoFrame) -> list[VideoFrame]:
        """Filter one frame; returns the frames ready so far (zero or more)."""
        key = (frame.width, frame.height, frame.format.name)
        drained: list[VideoFrame] = []
        if key != self._input_key:
            if self._graph is not None:
                drained = self.flush()
            self._build(frame)
            self._input_key = key
        assert self._source is not None
        self._source.push(frame)
        return drained + self._pull()

    def flush(self) -> list[VideoFrame]:
        """Signal the end of input and return the frames still in the graph."""
        if self._source is None:
            return []
        self._source.push(None)
        frames = self._pull()
        self._graph = self._source = self._sink = None
        self._input_key = None
        return frames

    def _build(self, frame: VideoFrame) -> None:
        graph = Graph()
        source = graph.add_buffer(
            width=frame.width,
            height=frame.height,
            format=frame.format,
            time_base=self._time_base,
        )
        chain = [source]
        for name, args in _UPRIGHT_FILTERS[self._rotation]:
            chain.append(graph.add(name, args))
        chain.append(graph.add("scale", f"{self._width}:{self._height}"))
        chain.append(graph.add("setsar", "1"))
        chain.append(graph.add("format", self._pixel_format))
        sink = graph.add("buffersink")
        chain.append(sink)
        graph.link_nodes(*chain)
        graph.configure()
        self._graph, self._source, self._sink = graph, source, sink

    def _pull(self) -> list[VideoFrame]:
        assert self._sink is not None
        return pull_ready(self._sink, VideoFrame)


def pull_ready(sink: FilterContext, kind: type[_FrameT]) -> list[_FrameT]:
    """The frames a filter graph's sink has ready: until it wants more input or ends."""
    frames: list[_FrameT] = []
    while True:
        try:
            frame = sink.pull()
        except (av.BlockingIOError, av.EOFError):
            return frames
        assert isinstance(frame, kind)
        frames.append(frame)
