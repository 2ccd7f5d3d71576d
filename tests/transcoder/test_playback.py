"""The playback MP4: when packets are copied, when re-encoded, and what comes out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import pytest

from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.playback import (
    make_playback,
    needs_transcode,
    remux,
    transcode,
)
from services.transcoder.media.probe import MediaInfo, MediaLimits, MediaRejected, probe
from tests.transcoder import media_factory as factory

GENEROUS = MediaLimits(max_duration_seconds=4 * 3600, max_width=7680, max_height=4320)
FRAME = 1 / 25
SMALL = PlaybackProfile(max_height=120, preset="ultrafast")


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("playback")


@pytest.fixture(scope="module")
def h264_mp4(media_dir: Path) -> Path:
    return factory.make_clip(media_dir / "clip.mp4", seconds=2)


@pytest.fixture(scope="module")
def h264_info(h264_mp4: Path) -> MediaInfo:
    return probe(h264_mp4, GENEROUS)


@pytest.fixture(scope="module")
def vp9_webm(media_dir: Path) -> Path:
    return factory.make_clip(
        media_dir / "odd.webm",
        seconds=2,
        size=(321, 241),
        video_codec="libvpx-vp9",
        audio_codec="libopus",
        video_options={"deadline": "realtime", "cpu-used": "8"},
    )


def test_h264_aac_mp4_needs_no_transcode(h264_info: MediaInfo) -> None:
    assert not needs_transcode(h264_info, PlaybackProfile())
    assert not needs_transcode(replace(h264_info, audio_codec=None), PlaybackProfile())
    assert not needs_transcode(replace(h264_info, pixel_format="yuvj420p"), PlaybackProfile())


def test_vp9_webm_needs_transcode(vp9_webm: Path) -> None:
    assert needs_transcode(probe(vp9_webm, GENEROUS), PlaybackProfile())


@pytest.mark.parametrize(
    "change",
    [
        {"width": 321},
        {"height": 241},
        {"height": 1440},
        {"rotation": 90},
        {"rotation": 180},
        {"pixel_format": "yuv444p"},
        {"pixel_format": "yuv420p10le"},
        {"audio_codec": "opus"},
        {"video_codec": "hevc"},
        {"container": "matroska,webm"},
    ],
)
def test_anything_a_browser_cannot_play_as_is_needs_transcode(
    h264_info: MediaInfo, change: dict[str, object]
) -> None:
    assert needs_transcode(replace(h264_info, **change), PlaybackProfile())  # type: ignore[arg-type]


def test_height_is_compared_with_the_profile(h264_info: MediaInfo) -> None:
    assert needs_transcode(h264_info, PlaybackProfile(max_height=200))
    assert not needs_transcode(h264_info, PlaybackProfile(max_height=240))


def test_remux_copies_packets_unchanged_and_puts_moov_first(
    h264_mp4: Path, media_dir: Path
) -> None:
    output = media_dir / "remuxed.mp4"

    remux(h264_mp4, output)

    for kind in ("video", "audio"):
        assert _packet_payloads(output, kind) == _packet_payloads(h264_mp4, kind), kind
    assert _extradata(output) == _extradata(h264_mp4)
    atoms = factory.atom_offsets(output)
    assert atoms["moov"] < atoms["mdat"]
    info = probe(output, GENEROUS)
    assert info.duration_seconds == pytest.approx(2.0, abs=FRAME)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")


def test_make_playback_remuxes_a_playable_mp4(
    h264_mp4: Path, h264_info: MediaInfo, media_dir: Path
) -> None:
    output = media_dir / "playable.mp4"

    remuxed = make_playback(h264_mp4, output, h264_info, PlaybackProfile())

    assert remuxed
    assert _packet_payloads(output, "video") == _packet_payloads(h264_mp4, "video")


def test_transcode_makes_a_small_h264_aac_faststart_mp4(vp9_webm: Path, media_dir: Path) -> None:
    info = probe(vp9_webm, GENEROUS)
    output = media_dir / "transcoded.mp4"

    remuxed = make_playback(vp9_webm, output, info, SMALL)

    assert not remuxed
    result = probe(output, GENEROUS)
    assert "mp4" in result.container.split(",")
    assert (result.video_codec, result.pixel_format, result.audio_codec) == (
        "h264",
        "yuv420p",
        "aac",
    )
    assert result.height <= 120
    assert result.width % 2 == 0
    assert result.height % 2 == 0
    assert result.width / result.height == pytest.approx(321 / 241, rel=0.03)
    assert result.duration_seconds == pytest.approx(info.duration_seconds, abs=FRAME)
    atoms = factory.atom_offsets(output)
    assert atoms["moov"] < atoms["mdat"]
    frames = factory.decode_all(output)
    assert len(frames) == 50
    assert frames[-1].time == pytest.approx(2.0 - FRAME, abs=FRAME / 2)
    assert _decoded_audio_seconds(output) == pytest.approx(2.0, abs=0.05)


def test_transcode_keeps_size_within_the_profile_and_no_audio_when_there_is_none(
    media_dir: Path,
) -> None:
    source = factory.make_clip(media_dir / "silent.mp4", seconds=1, audio=False)
    output = media_dir / "silent-out.mp4"

    transcode(source, output, probe(source, GENEROUS), PlaybackProfile(max_height=1080))

    result = probe(output, GENEROUS)
    assert (result.width, result.height) == (320, 240)  # never scaled up
    assert result.audio_codec is None


def test_transcode_starts_the_output_at_zero(media_dir: Path) -> None:
    # MPEG-TS from a broadcast starts wherever the recording began, here at 10 s.
    source = factory.make_clip(media_dir / "late.ts", seconds=1, start_seconds=10)
    info = probe(source, GENEROUS)
    assert info.duration_seconds == pytest.approx(1.0, abs=2 * FRAME)
    output = media_dir / "late.mp4"

    transcode(source, output, info, SMALL)

    result = probe(output, GENEROUS)
    assert result.duration_seconds == pytest.approx(info.duration_seconds, abs=FRAME)
    frames = factory.decode_all(output)
    assert len(frames) == 25
    assert frames[0].time == pytest.approx(0.0, abs=FRAME)


@pytest.mark.parametrize(
    ("rotation", "white_corner"),
    [(90, "top-right"), (180, "bottom-right"), (270, "bottom-left")],
)
def test_transcode_turns_rotated_video_upright(
    media_dir: Path, rotation: int, white_corner: str
) -> None:
    # Coded picture: white top-left quadrant on black, shown turned by `rotation`.
    source = factory.make_clip(
        media_dir / f"rotated{rotation}.mp4", seconds=0.4, rotation=rotation, pattern="corner"
    )
    output = media_dir / f"upright{rotation}.mp4"

    transcode(source, output, probe(source, GENEROUS), SMALL)

    result = probe(output, GENEROUS)
    assert result.rotation == 0
    expected = (90, 120) if rotation in (90, 270) else (160, 120)
    assert (result.width, result.height) == expected
    frame = factory.decode_all(output)[0]
    assert factory.bright_corner(frame) == white_corner


def test_transcode_chooses_its_own_keyframes(media_dir: Path) -> None:
    # An all-intra source (as cameras and editors write): decoded frames say "I" and
    # libx264 would obey them, making every output frame a keyframe.
    source = factory.make_clip(
        media_dir / "intra.mp4", seconds=1, audio=False, video_options={"x264-params": "keyint=1"}
    )
    assert _keyframes(source) == 25
    output = media_dir / "intra-out.mp4"

    transcode(source, output, probe(source, GENEROUS), SMALL)

    assert _keyframes(output) == 1


def test_truncated_mp4_with_its_index_is_rejected_before_any_playback_work(
    media_dir: Path,
) -> None:
    # With faststart the index survives the cut: the container claims 2 s, the data
    # stops at about 1 s. `probe` judges it for hosting and trimming alike.
    whole = factory.make_clip(media_dir / "whole.mp4", seconds=2, faststart=True)
    cut = factory.truncate(whole, media_dir / "cut.mp4", fraction=0.5)

    with pytest.raises(MediaRejected) as rejected:
        probe(cut, GENEROUS)

    assert str(rejected.value) == "video data is truncated"
    assert rejected.value.code == "corrupt_media"


def test_a_remux_checks_that_every_packet_decodes(media_dir: Path) -> None:
    whole = factory.make_clip(media_dir / "to-damage.mp4", seconds=2)
    damaged = factory.corrupt_packets(whole, media_dir / "damaged.mp4", [20])
    output = media_dir / "damaged-remux.mp4"

    with pytest.raises(MediaRejected) as rejected:
        remux(damaged, output)

    assert str(rejected.value) == "video data is corrupt"
    assert not output.exists()


def _packet_payloads(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        return [bytes(packet) for packet in container.demux(stream) if packet.size]


def _keyframes(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(packet.is_keyframe for packet in container.demux(video=0) if packet.size)


def _extradata(path: Path) -> bytes | None:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.extradata


def _decoded_audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)) / stream.sample_rate
