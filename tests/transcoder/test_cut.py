"""Frame-accurate trimming: which frames and samples a cut keeps, in what file, and that it
gets there by seeking rather than by decoding from the beginning.

The sources show their own frame index in blocks and beep at every whole second
(`media_factory.make_indexed_clip`), so a frame or a sample out of place shows.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import pytest

from services.transcoder.media.cut import CutResult, cut
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.probe import MediaInfo, MediaLimits, MediaRejected, probe
from tests.transcoder import media_factory as factory

GENEROUS = MediaLimits(max_duration_seconds=4 * 3600, max_width=7680, max_height=4320)
SMALL = PlaybackProfile(max_height=120, preset="ultrafast")
FPS = 25
GOP = 25  # a keyframe every second
SECONDS = 10
#: One AAC frame at 48 kHz, about 21 ms.
AUDIO_FRAME = 1024 / 48_000
VFR_SECONDS = 6


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The indexed sources, by name, made once for the module."""
    folder = tmp_path_factory.mktemp("cut-sources")
    make = factory.make_indexed_clip
    return {
        "plain": make(folder / "plain.mp4", seconds=SECONDS, gop=GOP),
        "bframes": make(folder / "bframes.mp4", seconds=SECONDS, gop=GOP, bframes=2),
        # No index, B-frames, timestamps not starting at zero: seeks land anywhere.
        "mpegts": make(
            folder / "bframes.ts", seconds=SECONDS, gop=GOP, bframes=2, container="mpegts"
        ),
        "vfr": make(folder / "vfr.mp4", seconds=VFR_SECONDS, gop=GOP, vfr=True),
    }


def _cut(src: Path, start: float, duration: float, folder: Path) -> tuple[CutResult, Path]:
    output = folder / "cut.mp4"
    return cut(src, output, start, duration, probe(src, GENEROUS), SMALL), output


def _indices(path: Path) -> list[int]:
    return [factory.frame_index(frame) for frame in factory.decode_all(path)]


@pytest.mark.parametrize(
    ("source", "start"),
    [
        ("plain", 2.2),  # exactly frame 55's time, not a keyframe
        ("plain", 2.23),  # between frames 55 and 56: 55 is shown
        ("bframes", 2.2),
        ("bframes", 2.23),
    ],
)
def test_the_first_frame_is_the_one_shown_at_start(
    sources: dict[str, Path], tmp_path: Path, source: str, start: float
) -> None:
    result, output = _cut(sources[source], start, 2.0, tmp_path)

    indices = _indices(output)
    assert indices[0] == 55
    assert indices == list(range(55, 55 + len(indices)))  # none lost, none repeated
    assert abs(len(indices) - round(2.0 * FPS)) <= 1
    assert result.frames == len(indices)
    assert result.duration_seconds == pytest.approx(2.0, abs=1e-3)
    assert factory.decode_all(output)[0].time == 0.0


def test_an_mpeg_ts_source_cuts_as_precisely(sources: dict[str, Path], tmp_path: Path) -> None:
    # Its timeline starts where the container's does (here with the audio, before the
    # first picture); the frame shown at 2.23 s of it is found from the source itself.
    with av.open(str(sources["mpegts"])) as source:
        origin = (source.start_time or 0) / av.time_base
        times = [frame.time - origin for frame in source.decode(video=0)]
    expected = max(index for index, time in enumerate(times) if time <= 2.23)

    result, output = _cut(sources["mpegts"], 2.23, 2.0, tmp_path)

    indices = _indices(output)
    assert indices == list(range(expected, expected + len(indices)))
    assert abs(len(indices) - round(2.0 * FPS)) <= 1
    assert result.duration_seconds == pytest.approx(2.0, abs=1e-3)


def test_the_output_is_a_faststart_h264_aac_mp4_starting_at_zero(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    result, output = _cut(sources["plain"], 2.23, 2.0, tmp_path)

    info = probe(output, GENEROUS)
    assert "mp4" in info.container.split(",")
    assert (info.video_codec, info.pixel_format, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert info.height <= SMALL.max_height
    atoms = factory.atom_offsets(output)
    assert atoms["moov"] < atoms["mdat"]
    assert result.has_audio
    with av.open(str(output)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.duration is not None
        assert video.time_base is not None
        assert float(video.duration * video.time_base) == pytest.approx(2.0, abs=1e-3)
        audio_frames = list(container.decode(audio))
    assert audio_frames[0].time == pytest.approx(0.0, abs=1e-3)
    samples = sum(frame.samples for frame in audio_frames)
    assert samples / audio.sample_rate == pytest.approx(2.0, abs=AUDIO_FRAME)


@pytest.mark.parametrize(
    ("source", "start"),
    [("plain", 2.2), ("plain", 2.23), ("plain", 3.0), ("bframes", 2.23)],
)
def test_audio_is_cut_at_the_same_instant(
    sources: dict[str, Path], tmp_path: Path, source: str, start: float
) -> None:
    # The source beeps at every whole second: the next beep after `start` must sound
    # as far into the clip as it was after `start` in the source (a frame off is 40 ms).
    _, output = _cut(sources[source], start, 1.5, tmp_path)

    assert factory.audio_onset(output) == pytest.approx(math.ceil(start) - start, abs=0.005)


@pytest.mark.parametrize("start", [2.19, 2.24])
def test_a_variable_frame_rate_source_keeps_its_timing(
    sources: dict[str, Path], tmp_path: Path, start: float
) -> None:
    times = factory.indexed_frame_times(VFR_SECONDS, vfr=True)
    shown = max(index for index, time in enumerate(times) if time <= Fraction(str(start)))

    result, output = _cut(sources["vfr"], start, 2.0, tmp_path)

    frames = factory.decode_all(output)
    indices = [factory.frame_index(frame) for frame in frames]
    assert indices == list(range(shown, shown + len(indices)))
    # After the first frame (shown from zero), each keeps its distance from `start`.
    for frame, index in list(zip(frames, indices, strict=True))[1:]:
        assert frame.time == pytest.approx(float(times[index]) - start, abs=1e-3)
    assert result.duration_seconds == pytest.approx(2.0, abs=1e-3)
    assert probe(output, GENEROUS).duration_seconds == pytest.approx(2.0, abs=AUDIO_FRAME)


def test_a_span_past_the_end_is_clipped(sources: dict[str, Path], tmp_path: Path) -> None:
    result, output = _cut(sources["plain"], 8.6, 5.0, tmp_path)

    indices = _indices(output)
    assert indices[0] == 215
    assert indices[-1] == SECONDS * FPS - 1
    assert result.duration_seconds == pytest.approx(SECONDS - 8.6, abs=1e-3)
    assert abs(result.frames - round((SECONDS - 8.6) * FPS)) <= 1
    assert probe(output, GENEROUS).duration_seconds == pytest.approx(SECONDS - 8.6, abs=0.05)


@pytest.mark.parametrize("start", [SECONDS, SECONDS + 1.5])
def test_a_start_beyond_the_end_is_rejected(
    sources: dict[str, Path], tmp_path: Path, start: float
) -> None:
    with pytest.raises(MediaRejected) as rejected:
        _cut(sources["plain"], start, 1.0, tmp_path)

    assert str(rejected.value) == "start is beyond the end of the video"
    assert not (tmp_path / "cut.mp4").exists()


def test_a_start_after_the_last_picture_is_rejected_and_leaves_no_file(tmp_path: Path) -> None:
    # The audio runs on for a second after the pictures stop: the container is 3 s long,
    # so only the cut itself finds there is no picture to start from.
    src = factory.make_indexed_clip(tmp_path / "short-video.mp4", seconds=2, audio_seconds=3)
    assert probe(src, GENEROUS).duration_seconds > 2.5

    with pytest.raises(MediaRejected) as rejected:
        _cut(src, 2.5, 0.4, tmp_path)

    assert str(rejected.value) == "start is beyond the end of the video"
    assert not (tmp_path / "cut.mp4").exists()


def test_the_cut_seeks_instead_of_decoding_from_the_beginning(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    result, _ = _cut(sources["plain"], 8.4, 1.0, tmp_path)

    # From the keyframe at 8 s: 10 frames before the start, 25 in the clip, and the
    # few the decoder still held. From the beginning it would be 235 and more.
    assert result.decoded_frames < result.frames + GOP + 20
    assert result.decoded_frames >= result.frames + 10


def test_a_rotated_source_is_cut_upright(tmp_path: Path) -> None:
    src = factory.make_clip(
        tmp_path / "rotated.mp4", seconds=1, rotation=90, pattern="corner", audio=False
    )

    result, output = _cut(src, 0.2, 0.4, tmp_path)

    info = probe(output, GENEROUS)
    assert (info.rotation, info.width, info.height) == (0, 90, 120)
    assert factory.bright_corner(factory.decode_all(output)[0]) == "top-right"
    assert not result.has_audio
    assert info.audio_codec is None


@pytest.mark.parametrize(
    ("make", "name", "reason"),
    [
        (factory.make_text_file, "notes.txt", "file is not a media file"),
        (factory.make_audio_only, "song.m4a", "no video stream"),
    ],
)
def test_what_is_no_video_is_rejected_as_probe_does(
    sources: dict[str, Path], tmp_path: Path, make: factory.Maker, name: str, reason: str
) -> None:
    # The worker probes first; cut refuses such files the same way all the same.
    src = make(tmp_path / name)
    info: MediaInfo = probe(sources["plain"], GENEROUS)
    output = tmp_path / "cut.mp4"

    with pytest.raises(MediaRejected) as rejected:
        cut(src, output, 0.5, 1.0, info, SMALL)

    assert str(rejected.value) == reason
    assert not output.exists()


@pytest.mark.parametrize(("start", "duration"), [(-1.0, 1.0), (1.0, 0.0), (math.nan, 1.0)])
def test_nonsense_times_are_a_programming_error(
    sources: dict[str, Path], tmp_path: Path, start: float, duration: float
) -> None:
    with pytest.raises(ValueError, match="must be"):
        _cut(sources["plain"], start, duration, tmp_path)
