"""The poster JPEG: a real JPEG, small enough, upright, and not a black frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest
from av.video.frame import VideoFrame

from services.transcoder.media.probe import MediaLimits, probe
from services.transcoder.media.thumbnail import make_thumbnail, mean_luma
from tests.transcoder import media_factory as factory

GENEROUS = MediaLimits(max_duration_seconds=4 * 3600, max_width=7680, max_height=4320)
ONE_KEYFRAME: dict[str, Any] = {"video_options": {"x264-params": "scenecut=0:keyint=250"}}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("thumbnail")


def test_thumbnail_is_a_jpeg_no_wider_than_asked(media_dir: Path) -> None:
    source = factory.make_clip(media_dir / "clip.mp4", seconds=1, size=(320, 240))
    output = media_dir / "clip.jpg"

    make_thumbnail(source, output, probe(source, GENEROUS), max_width=100)

    assert output.read_bytes()[:2] == b"\xff\xd8"
    picture = _decode_jpeg(output)
    assert picture.width <= 100
    assert picture.width % 2 == 0
    assert picture.height % 2 == 0
    assert picture.width / picture.height == pytest.approx(320 / 240, rel=0.05)


def test_thumbnail_is_not_scaled_up(media_dir: Path) -> None:
    source = factory.make_clip(media_dir / "small.mp4", seconds=1, size=(320, 240), audio=False)
    output = media_dir / "small.jpg"

    make_thumbnail(source, output, probe(source, GENEROUS))

    picture = _decode_jpeg(output)
    assert (picture.width, picture.height) == (320, 240)


def test_thumbnail_skips_black_first_frames(media_dir: Path) -> None:
    # 10 black frames (0.4 s) then bright ones; 10% of 2 s lands on black frame 5.
    source = factory.make_clip(media_dir / "fade-in.mp4", seconds=2, first_frames_black=10)
    frames = factory.decode_all(source)
    assert mean_luma(frames[5]) < 20
    assert mean_luma(frames[10]) > 80
    output = media_dir / "fade-in.jpg"

    make_thumbnail(source, output, probe(source, GENEROUS), max_width=160)

    assert mean_luma(_decode_jpeg(output)) > 80


def test_thumbnail_is_taken_at_a_tenth_of_the_video(media_dir: Path) -> None:
    # 0.2 s of `corner` frames, then `testsrc2`; 10% of 4 s is 0.4 s. One keyframe
    # only (no scene-cut keyframe at frame 5), so the seek lands on frame 0 and
    # decoding must go on to the target.
    source = factory.make_clip(media_dir / "intro.mp4", seconds=4, intro=("corner", 5), audio=False)
    output = media_dir / "intro.jpg"

    make_thumbnail(source, output, probe(source, GENEROUS))

    assert factory.bright_corner(_decode_jpeg(output)) != "top-left"


def test_the_tenth_is_measured_from_the_first_timestamp(media_dir: Path) -> None:
    # The same in MPEG-TS whose timestamps start at 10 s, as broadcast recordings do.
    source = factory.make_clip(
        media_dir / "intro.ts",
        seconds=4,
        intro=("corner", 5),
        audio=False,
        start_seconds=10,
        **ONE_KEYFRAME,
    )
    output = media_dir / "intro-ts.jpg"

    make_thumbnail(source, output, probe(source, GENEROUS))

    assert factory.bright_corner(_decode_jpeg(output)) != "top-left"


def test_an_all_black_video_still_gets_a_thumbnail(media_dir: Path) -> None:
    source = factory.make_clip(media_dir / "black.mp4", seconds=1, first_frames_black=25)
    output = media_dir / "black.jpg"

    make_thumbnail(source, output, probe(source, GENEROUS))

    assert mean_luma(_decode_jpeg(output)) < 20


def test_thumbnail_of_a_rotated_video_is_upright(media_dir: Path) -> None:
    source = factory.make_clip(
        media_dir / "rotated.mp4", seconds=1, rotation=90, pattern="corner", audio=False
    )
    output = media_dir / "rotated.jpg"

    make_thumbnail(source, output, probe(source, GENEROUS), max_width=120)

    picture = _decode_jpeg(output)
    assert (picture.width, picture.height) == (120, 160)
    assert factory.bright_corner(picture) == "top-right"


def test_thumbnail_of_a_vp9_webm(media_dir: Path) -> None:
    source = factory.make_clip(
        media_dir / "clip.webm",
        seconds=1,
        video_codec="libvpx-vp9",
        audio_codec="libopus",
        video_options={"deadline": "realtime", "cpu-used": "8"},
    )
    output = media_dir / "webm.jpg"

    make_thumbnail(source, output, probe(source, GENEROUS), max_width=640)

    assert _decode_jpeg(output).width == 320


@pytest.mark.parametrize("pixel_format", ["yuv420p", "yuvj444p", "nv12", "rgb24", "gray16le"])
def test_mean_luma_reads_black_and_white_in_any_format(pixel_format: str) -> None:
    black = _uniform_gray(0).reformat(format=pixel_format)
    white = _uniform_gray(255).reformat(format=pixel_format)

    assert mean_luma(black) < 20
    assert mean_luma(white) > 230


def _uniform_gray(level: int) -> VideoFrame:
    frame = VideoFrame(96, 64, "gray")
    plane = frame.planes[0]
    plane.update(bytes([level]) * plane.buffer_size)
    return frame


def _decode_jpeg(path: Path) -> VideoFrame:
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mjpeg"
        return next(container.decode(video=0))
