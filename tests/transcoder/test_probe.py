"""`probe`: what it reports for real clips made by PyAV, and what it refuses, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.transcoder.media import errors
from services.transcoder.media.probe import MediaLimits, MediaRejected, probe
from tests.transcoder import media_factory as factory

GENEROUS = MediaLimits(max_duration_seconds=4 * 3600, max_width=7680, max_height=4320)
FRAME = 1 / 25


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe")


@pytest.fixture(scope="module")
def h264_mp4(media_dir: Path) -> Path:
    return factory.make_clip(media_dir / "clip.mp4", seconds=2, size=(320, 240), fps=25)


@pytest.fixture(scope="module")
def faststart_mp4(media_dir: Path) -> Path:
    return factory.make_clip(media_dir / "faststart.mp4", faststart=True)


def test_h264_aac_mp4_is_described(h264_mp4: Path) -> None:
    info = probe(h264_mp4, GENEROUS)

    assert info.duration_seconds == pytest.approx(2.0, abs=FRAME)
    assert "mp4" in info.container.split(",")
    assert (info.video_codec, info.width, info.height) == ("h264", 320, 240)
    assert info.rotation == 0
    assert info.pixel_format == "yuv420p"
    assert info.frame_rate == pytest.approx(25)
    assert (info.audio_codec, info.audio_sample_rate, info.audio_channels) == ("aac", 48000, 2)


def test_vp9_opus_webm_is_described(media_dir: Path) -> None:
    clip = factory.make_clip(
        media_dir / "clip.webm",
        seconds=1.2,
        size=(256, 144),
        video_codec="libvpx-vp9",
        audio_codec="libopus",
        video_options={"deadline": "realtime", "cpu-used": "8"},
    )

    info = probe(clip, GENEROUS)

    assert info.duration_seconds == pytest.approx(1.2, abs=FRAME)
    assert "webm" in info.container.split(",")
    assert (info.video_codec, info.width, info.height) == ("vp9", 256, 144)
    assert info.audio_codec == "opus"


def test_clip_without_audio_has_no_audio_fields(media_dir: Path) -> None:
    clip = factory.make_clip(media_dir / "silent.mp4", seconds=1, audio=False)

    info = probe(clip, GENEROUS)

    assert info.video_codec == "h264"
    assert (info.audio_codec, info.audio_sample_rate, info.audio_channels) == (None, None, None)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_display_rotation_is_read_as_clockwise_degrees(media_dir: Path, rotation: int) -> None:
    clip = factory.make_clip(media_dir / f"rotated{rotation}.mp4", seconds=0.4, rotation=rotation)

    info = probe(clip, GENEROUS)

    assert info.rotation == rotation
    assert (info.width, info.height) == (320, 240)  # coded size, before rotation


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("aac.m4a", lambda path: factory.make_audio_only(path, codec="aac")),
        ("opus.ogg", lambda path: factory.make_audio_only(path, codec="libopus")),
        ("still.jpg", factory.make_still_image),
    ],
)
def test_audio_only_files_and_still_images_have_no_video_stream(
    media_dir: Path, name: str, make: factory.Maker
) -> None:
    path = make(media_dir / name)

    with pytest.raises(MediaRejected) as rejected:
        probe(path, GENEROUS)

    assert str(rejected.value) == "no video stream"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("notes.txt", factory.make_text_file),
        ("noise.bin", factory.make_random_bytes),
        ("empty.mp4", factory.make_empty_file),
    ],
)
def test_garbage_is_not_a_media_file(media_dir: Path, name: str, make: factory.Maker) -> None:
    path = make(media_dir / name)

    with pytest.raises(MediaRejected) as rejected:
        probe(path, GENEROUS)

    assert str(rejected.value) == "file is not a media file"


def test_mp4_cut_before_its_index_is_not_a_media_file(h264_mp4: Path, media_dir: Path) -> None:
    # Written without faststart, the `moov` index is at the end: half the file has none.
    assert factory.atom_offsets(h264_mp4)["moov"] > factory.atom_offsets(h264_mp4)["mdat"]
    cut = factory.truncate(h264_mp4, media_dir / "cut.mp4", fraction=0.5)

    with pytest.raises(MediaRejected) as rejected:
        probe(cut, GENEROUS)

    assert str(rejected.value) == "file is not a media file"


def test_duration_above_the_limit_is_rejected(h264_mp4: Path) -> None:
    limits = MediaLimits(max_duration_seconds=1.5, max_width=7680, max_height=4320)

    with pytest.raises(MediaRejected) as rejected:
        probe(h264_mp4, limits)

    assert str(rejected.value) == "video longer than the limit"


@pytest.mark.parametrize(("max_width", "max_height"), [(160, 120), (320, 200), (300, 240)])
def test_resolution_above_the_limit_is_rejected(
    h264_mp4: Path, max_width: int, max_height: int
) -> None:
    limits = MediaLimits(max_duration_seconds=60, max_width=max_width, max_height=max_height)

    with pytest.raises(MediaRejected) as rejected:
        probe(h264_mp4, limits)

    assert str(rejected.value) == "resolution above the limit"


def test_resolution_limit_ignores_orientation(media_dir: Path) -> None:
    portrait = factory.make_clip(media_dir / "portrait.mp4", seconds=0.4, size=(240, 320))

    info = probe(portrait, MediaLimits(max_duration_seconds=60, max_width=320, max_height=240))

    assert (info.width, info.height) == (240, 320)


def test_limits_are_checked_before_any_decoding(faststart_mp4: Path, media_dir: Path) -> None:
    # Intact metadata, undecodable pictures: a limit wins over the decode failure.
    broken = factory.zero_media_data(faststart_mp4, media_dir / "zeroed.mp4")
    tiny = MediaLimits(max_duration_seconds=60, max_width=16, max_height=16)
    short = MediaLimits(max_duration_seconds=1, max_width=7680, max_height=4320)

    with pytest.raises(MediaRejected) as too_large:
        probe(broken, tiny)
    with pytest.raises(MediaRejected) as too_long:
        probe(broken, short)
    with pytest.raises(MediaRejected) as corrupt:
        probe(broken, GENEROUS)

    assert str(too_large.value) == "resolution above the limit"
    assert str(too_long.value) == "video longer than the limit"
    assert str(corrupt.value) == "video data is corrupt"


@pytest.mark.parametrize(
    ("reason", "text", "code"),
    [
        (errors.NOT_MEDIA, "file is not a media file", "not_media"),
        (errors.NO_VIDEO, "no video stream", "no_video_stream"),
        (errors.TOO_LONG, "video longer than the limit", "too_long"),
        (errors.TOO_LARGE, "resolution above the limit", "resolution_too_high"),
        (errors.VIDEO_CORRUPT, "video data is corrupt", "corrupt_media"),
        (errors.AUDIO_CORRUPT, "audio data is corrupt", "corrupt_media"),
        (errors.TRUNCATED, "video data is truncated", "corrupt_media"),
        (
            errors.ENCODING_FAILED,
            "the video could not be converted for playback",
            "unsupported_codec",
        ),
        (errors.BEYOND_END, "start is beyond the end of the video", "start_beyond_end"),
        (errors.SPAN_TOO_SHORT, "the span is shorter than one frame", "span_too_short"),
    ],
)
def test_reasons_are_the_ones_the_api_shows_with_their_codes(
    reason: str, text: str, code: str
) -> None:
    assert reason == text
    assert MediaRejected(reason).code == code


def test_the_end_of_the_video_is_read_from_its_packets(media_dir: Path) -> None:
    # MPEG-TS: the timeline starts with the audio, before the first picture.
    clip = factory.make_clip(media_dir / "late.ts", seconds=1, start_seconds=10)

    info = probe(clip, GENEROUS)

    assert info.video_end_seconds == pytest.approx(info.duration_seconds, abs=FRAME)
    assert 0.9 < info.video_end_seconds <= info.duration_seconds


def test_data_running_past_the_duration_limit_is_too_long_whatever_the_header_says(
    media_dir: Path,
) -> None:
    # The Matroska header claims 1 s; 3 s of data follow.
    clip = factory.make_clip(media_dir / "long.mkv", seconds=3)
    modest = factory.claim_duration(clip, media_dir / "modest.mkv", 1)
    limits = MediaLimits(max_duration_seconds=2, max_width=7680, max_height=4320)

    with pytest.raises(MediaRejected) as rejected:
        probe(modest, limits)

    assert str(rejected.value) == "video longer than the limit"


def test_a_webm_with_no_duration_in_its_header_lasts_as_long_as_its_data(
    media_dir: Path,
) -> None:
    """As a browser's MediaRecorder writes WebM: streamed, no duration in the header."""
    clip = factory.make_clip(
        media_dir / "recorded.webm",
        seconds=1.6,
        size=(256, 144),
        video_codec="libvpx-vp9",
        audio_codec="libopus",
        video_options={"deadline": "realtime", "cpu-used": "8"},
        live=True,
    )

    info = probe(clip, GENEROUS)

    assert info.duration_seconds == pytest.approx(1.6, abs=2 * FRAME)
    limits = MediaLimits(max_duration_seconds=1, max_width=7680, max_height=4320)
    with pytest.raises(MediaRejected) as rejected:
        probe(clip, limits)
    assert str(rejected.value) == "video longer than the limit"


def test_a_missing_file_is_an_environment_error_not_a_rejection(media_dir: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(media_dir / "never-written.mp4", GENEROUS)
