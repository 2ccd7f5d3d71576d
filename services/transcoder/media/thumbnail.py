"""The poster picture: a JPEG of a representative frame, upright and at most
`max_width` wide, encoded with FFmpeg's mjpeg encoder.

The frame is the first one at 10% of the duration (at most 5 s in) that is not nearly
black; fades and black intros are skipped for a bounded number of frames, after which
the brightest frame seen is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
from av.codec.context import CodecContext
from av.container import InputContainer
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from services.transcoder.media.errors import (
    ENCODING_FAILED,
    NO_VIDEO,
    VIDEO_CORRUPT,
    MediaRejected,
    TolerantDecoder,
    is_environment_error,
    rejected_as,
)
from services.transcoder.media.geometry import FrameShaper, fit_within, upright_size
from services.transcoder.media.probe import MediaInfo, open_source, video_stream_of

_SEEK_FRACTION = 0.10
_MAX_SEEK_SECONDS = 5.0
#: Mean luma (0-255) under which a frame counts as nearly black. Black is 16 in the
#: limited range most video uses, 0 in full range.
_DARK_LUMA = 32.0
#: Frames examined from the seek point before settling for the brightest one.
_MAX_FRAMES_EXAMINED = 250
#: Formats whose first plane is 8-bit luma, read directly; others are converted to gray.
_LUMA_FIRST_FORMATS = frozenset(
    {
        "gray",
        "nv12",
        "nv21",
        "yuv410p",
        "yuv411p",
        "yuv420p",
        "yuv422p",
        "yuv440p",
        "yuv444p",
        "yuva420p",
        "yuvj420p",
        "yuvj422p",
        "yuvj440p",
        "yuvj444p",
    }
)
_LUMA_SAMPLES_PER_SIDE = 64
#: mjpeg quantiser scale (2 best .. 31 worst), as `ffmpeg -q:v`.
_JPEG_QSCALE = 3
_FF_QP2LAMBDA = 118


def make_thumbnail(src: Path, dst: Path, info: MediaInfo, max_width: int = 640) -> None:
    """Write a JPEG poster for the video at `src` to `dst`."""
    target = min(info.duration_seconds * _SEEK_FRACTION, _MAX_SEEK_SECONDS)
    frame, sample_aspect = _representative_frame(src, target, seek=True)
    if frame is None:
        # The seek landed where nothing decodes (no keyframe after it, a broken index):
        # decode from the start up to the target instead.
        frame, sample_aspect = _representative_frame(src, target, seek=False)
    if frame is None:
        # The target is past the real end (the duration was overstated): any frame.
        frame, sample_aspect = _representative_frame(src, 0.0, seek=False)
    if frame is None:
        raise MediaRejected(VIDEO_CORRUPT)
    dst.write_bytes(_encode_jpeg(frame, info.rotation, sample_aspect, max_width))


def mean_luma(frame: VideoFrame) -> float:
    """Average brightness (0-255) from a grid of samples of the luma plane."""
    if frame.format.name not in _LUMA_FIRST_FORMATS:
        frame = frame.reformat(format="gray")
    plane = frame.planes[0]
    data = memoryview(plane)
    width, height, stride = frame.width, frame.height, plane.line_size
    step_x = max(1, width // _LUMA_SAMPLES_PER_SIDE)
    step_y = max(1, height // _LUMA_SAMPLES_PER_SIDE)
    total = count = 0
    for y in range(0, height, step_y):
        row = data[y * stride : y * stride + width : step_x]
        total += sum(row)
        count += len(row)
    return total / count if count else 0.0


def _representative_frame(
    src: Path, target: float, *, seek: bool
) -> tuple[VideoFrame | None, Fraction | None]:
    """The first bright enough frame `target` seconds or more into the video (or the
    brightest examined), and the stream's sample aspect ratio."""
    with open_source(src) as source:
        video = video_stream_of(source)
        if video is None:
            raise MediaRejected(NO_VIDEO)
        video.codec_context.thread_type = "AUTO"
        time_base = video.time_base or Fraction(1, 1)
        start = float((video.start_time or 0) * time_base)
        if seek and target > 0 and not _seek(source, video, target):
            return None, None
        brightest: VideoFrame | None = None
        brightest_luma = -1.0
        examined = 0
        for frame in _decoded(source, video):
            if frame.pts is not None and frame.time - start < target:
                continue  # before the target: decoding from the keyframe before it
            luma = mean_luma(frame)
            if luma >= _DARK_LUMA:
                return frame, video.sample_aspect_ratio
            if luma > brightest_luma:
                brightest, brightest_luma = frame, luma
            examined += 1
            if examined >= _MAX_FRAMES_EXAMINED:
                break
        return brightest, video.sample_aspect_ratio


def _seek(source: InputContainer, video: VideoStream, target: float) -> bool:
    """Seek to the keyframe at or before `target` seconds in; False if FFmpeg cannot."""
    assert video.time_base is not None
    position = (video.start_time or 0) + int(target / video.time_base)
    try:
        source.seek(position, stream=video, backward=True)
    except av.FFmpegError as exc:
        if is_environment_error(exc):
            raise
        return False
    return True


def _decoded(source: InputContainer, video: VideoStream) -> Iterator[VideoFrame]:
    """Decoded frames, skipping a few undecodable packets like `ffmpeg` does."""
    decode = TolerantDecoder(video.decode, VIDEO_CORRUPT)
    with rejected_as(VIDEO_CORRUPT):
        for packet in source.demux(video):
            yield from decode(packet)


def _encode_jpeg(
    frame: VideoFrame, rotation: int, sample_aspect: Fraction | None, max_width: int
) -> bytes:
    width, height = fit_within(
        *upright_size(frame.width, frame.height, rotation, sample_aspect), max_width=max_width
    )
    with rejected_as(ENCODING_FAILED):
        shaper = FrameShaper(
            rotation=rotation,
            width=width,
            height=height,
            pixel_format="yuvj420p",
            time_base=frame.time_base or Fraction(1, 25),
        )
        pictures = shaper.push(frame) + shaper.flush()
        encoder = CodecContext.create("mjpeg", "w")
        assert isinstance(encoder, VideoCodecContext)
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
        encoder.time_base = Fraction(1, 25)
        encoder.qscale = True
        encoder.global_quality = _JPEG_QSCALE * _FF_QP2LAMBDA
        if not pictures:
            raise MediaRejected(ENCODING_FAILED)
        picture = pictures[-1]
        picture.pts = 0
        packets = encoder.encode(picture) + encoder.encode(None)
    if not packets:
        raise MediaRejected(ENCODING_FAILED)
    return bytes(packets[0])
