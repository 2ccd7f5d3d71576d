"""The smart cut: the first frame is exact, the middle is the source's own packets, every
frame decodes, timestamps run on across the seams, sound stays in sync, and sources that
cannot be copied safely are re-encoded, saying why.

Sources are `media_factory.make_indexed_clip` clips (each frame shows its index, a beep
at every whole second) with a keyframe every second.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import pytest

from services.transcoder.media.cut import CutResult
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.probe import MediaLimits, probe
from services.transcoder.media.smart_cut import smart_cut
from tests.transcoder import media_factory as factory

GENEROUS = MediaLimits(max_duration_seconds=4 * 3600, max_width=7680, max_height=4320)
PROFILE = PlaybackProfile(max_height=480, preset="ultrafast")
FPS = 25
GOP = 25  # a keyframe every second
SECONDS = 6
SIZE = (320, 240)
DURATION = 3.0
AUDIO_FRAME = 1024 / 48_000

#: Starts: on a keyframe, a frame after one, a frame before one, between two frames.
STARTS = {"on": 2.0, "after": 2.04, "before": 1.96, "between": 2.01}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("smart-cut-sources")
    make = factory.make_indexed_clip
    common = {"seconds": SECONDS, "gop": GOP, "size": SIZE}
    return {
        "plain": make(folder / "plain.mp4", **common),
        "bframes": make(folder / "bframes.mp4", bframes=2, **common),
        "matroska": make(folder / "bframes.mkv", bframes=2, **common),
        "mpegts": make(folder / "bframes.ts", bframes=2, container="mpegts", **common),
        "open-gop": make(folder / "open.mp4", bframes=2, open_gop=True, **common),
    }


@pytest.fixture(scope="module")
def cuts(
    sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], tuple[CutResult, Path]]:
    """Every copyable source cut at every start, once for the module."""
    folder = tmp_path_factory.mktemp("smart-cuts")
    made = {}
    for name in ("plain", "bframes", "matroska", "mpegts"):
        for where, start in STARTS.items():
            output = folder / f"{name}-{where}.mp4"
            made[name, where] = (_cut(sources[name], output, start, DURATION), output)
    return made


def _cut(src: Path, dst: Path, start: float, duration: float) -> CutResult:
    return smart_cut(src, dst, start, duration, probe(src, GENEROUS), PROFILE)


def _indices(path: Path) -> list[int]:
    return [factory.frame_index(frame) for frame in factory.decode_all(path)]


def _shown_at(src: Path, start: float) -> int:
    """The index of the source frame shown at `start` of its container's timeline."""
    with av.open(str(src)) as source:
        origin = (source.start_time or 0) / av.time_base
        times = [frame.time - origin for frame in source.decode(video=0)]
    return max(index for index, time in enumerate(times) if time <= start + 1e-9)


def _video_packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        return [packet for packet in container.demux(video=0) if packet.size]


def _decode_logging_problems(path: Path) -> tuple[int, list[str]]:
    """Decode every video frame with FFmpeg's warnings and errors captured: the frame
    count and the messages."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture() as logs, av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(video=0))
    finally:
        av.logging.set_level(previous)
    return frames, [
        f"{name}: {message}" for level, name, message in logs if level <= av.logging.WARNING
    ]


CUT_CASES = [
    (name, where) for name in ("plain", "bframes", "matroska", "mpegts") for where in STARTS
]


@pytest.mark.parametrize(("source", "where"), CUT_CASES)
def test_the_first_frame_is_the_source_frame_at_start(
    sources: dict[str, Path],
    cuts: dict[tuple[str, str], tuple[CutResult, Path]],
    source: str,
    where: str,
) -> None:
    result, output = cuts[source, where]
    expected = _shown_at(sources[source], STARTS[where])

    indices = _indices(output)
    assert result.method == "smart", result.reencode_reason
    assert indices[0] == expected
    assert indices == list(range(expected, expected + len(indices)))  # none lost or repeated
    assert abs(len(indices) - round(DURATION * FPS)) <= 1
    assert result.frames == len(indices)
    assert result.copied_packets >= GOP  # at least one whole second copied
    assert result.actual_start == pytest.approx(STARTS[where], abs=1 / FPS)
    assert result.actual_start <= STARTS[where] + 1e-9
    assert result.actual_duration == pytest.approx(
        STARTS[where] + DURATION - result.actual_start, abs=1e-3
    )


@pytest.mark.parametrize(
    ("source", "where"), [("bframes", "after"), ("matroska", "before"), ("mpegts", "between")]
)
def test_the_copied_packets_are_the_source_packets_bit_for_bit(
    sources: dict[str, Path],
    cuts: dict[tuple[str, str], tuple[CutResult, Path]],
    source: str,
    where: str,
) -> None:
    result, output = cuts[source, where]
    source_packets = [bytes(packet) for packet in _video_packets(sources[source])]
    if source == "mpegts":  # Annex B in the source: compare NAL units
        source_packets = [_annex_b_to_mp4(data) for data in source_packets]
    output_packets = [bytes(packet) for packet in _video_packets(output)]

    copied = [data for data in output_packets if data in set(source_packets)]
    assert len(copied) == result.copied_packets >= GOP
    # One run of the source's packets, in their order.
    first = source_packets.index(copied[0])
    assert source_packets[first : first + len(copied)] == copied


@pytest.mark.parametrize(("source", "where"), CUT_CASES)
def test_every_frame_decodes_without_a_warning(
    cuts: dict[tuple[str, str], tuple[CutResult, Path]], source: str, where: str
) -> None:
    result, output = cuts[source, where]

    frames, problems = _decode_logging_problems(output)

    assert problems == []
    assert frames == result.frames


@pytest.mark.parametrize(("source", "where"), CUT_CASES)
def test_timestamps_run_on_across_the_seams(
    cuts: dict[tuple[str, str], tuple[CutResult, Path]], source: str, where: str
) -> None:
    result, output = cuts[source, where]
    packets = _video_packets(output)

    decoding = [packet.dts for packet in packets]
    assert all(later > earlier for earlier, later in itertools.pairwise(decoding))  # strictly
    assert all(p.dts is not None and p.pts is not None and p.dts <= p.pts for p in packets)
    time_base = packets[0].time_base
    shown = sorted(
        Fraction(p.pts * time_base) - Fraction(packets[0].pts * time_base) for p in packets
    )
    assert shown[0] == 0
    gaps = {round(float(later - earlier) * FPS, 3) for earlier, later in itertools.pairwise(shown)}
    assert gaps == {1.0}  # one frame apart: no gap, no overlap at a seam
    assert float(shown[-1]) + 1 / FPS == pytest.approx(result.actual_duration, abs=1 / FPS)


@pytest.mark.parametrize("where", ["on", "before"])  # the others start mid-beep
def test_sound_stays_in_sync_within_an_aac_frame(
    cuts: dict[tuple[str, str], tuple[CutResult, Path]], where: str
) -> None:
    result, output = cuts["bframes", where]
    # The first beep in the clip (a whole second of the source) sounds with its frame.
    beeping = math.ceil(result.actual_start - 1e-9) * FPS
    onset = factory.audio_onset(output)
    assert onset is not None
    with av.open(str(output)) as container:
        shown = next(
            frame.time
            for frame in container.decode(video=0)
            if factory.frame_index(frame) == beeping
        )
    assert onset == pytest.approx(shown, abs=AUDIO_FRAME)
    with av.open(str(output)) as container:
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio))
    assert samples / audio.sample_rate == pytest.approx(result.actual_duration, abs=AUDIO_FRAME)


def test_the_output_is_a_faststart_avc1_mp4(
    cuts: dict[tuple[str, str], tuple[CutResult, Path]],
) -> None:
    _, output = cuts["mpegts", "after"]

    info = probe(output, GENEROUS)
    assert "mp4" in info.container.split(",")
    assert (info.video_codec, info.pixel_format, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert (info.width, info.height) == SIZE
    atoms = factory.atom_offsets(output)
    assert atoms["moov"] < atoms["mdat"]
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_tag == "avc1"


def test_an_open_gop_source_is_re_encoded_rather_than_copied_broken(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    result = _cut(sources["open-gop"], tmp_path / "open.mp4", 2.04, DURATION)

    assert result.method == "reencode"
    assert result.reencode_reason is not None
    assert "open GOP" in result.reencode_reason
    indices = _indices(tmp_path / "open.mp4")
    assert indices[0] == 51
    assert indices == list(range(51, 51 + len(indices)))


def test_a_span_within_one_group_of_pictures_is_re_encoded(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    result = _cut(sources["bframes"], tmp_path / "short.mp4", 2.2, 0.6)

    assert (result.method, result.reencode_reason) == (
        "reencode",
        "no whole group of pictures in the span",
    )
    assert _indices(tmp_path / "short.mp4")[0] == 55


def test_a_span_running_past_the_end_copies_to_the_end(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    result = _cut(sources["bframes"], tmp_path / "end.mp4", 3.48, 10.0)

    assert result.method == "smart"
    indices = _indices(tmp_path / "end.mp4")
    assert indices == list(range(87, SECONDS * FPS))
    assert result.actual_duration == pytest.approx(SECONDS - 3.48, abs=1e-3)


_X265_QUIET = {"x265-params": "log-level=error"}
FALLBACKS = {
    "hevc": (
        lambda d: factory.make_clip(
            d / "hevc.mp4", seconds=3, video_codec="libx265", video_options=_X265_QUIET
        ),
        "hevc video",
    ),
    "10-bit": (
        lambda d: factory.make_clip(d / "10bit.mp4", seconds=3, pix_fmt="yuv420p10le"),
        "pixel format yuv420p10le",
    ),
    "rotated": (
        lambda d: factory.make_clip(d / "rotated.mp4", seconds=3, rotation=90),
        "rotated",
    ),
}


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_sources_that_cannot_be_copied_are_re_encoded_saying_why(tmp_path: Path, name: str) -> None:
    make, reason = FALLBACKS[name]
    source = make(tmp_path)

    result = _cut(source, tmp_path / "out.mp4", 0.5, 2.0)

    assert result.method == "reencode"
    assert result.reencode_reason is not None
    assert reason in result.reencode_reason
    assert result.copied_packets == 0
    assert probe(tmp_path / "out.mp4", GENEROUS).video_codec == "h264"


def _annex_b_to_mp4(data: bytes) -> bytes:
    units = [unit.rstrip(b"\x00") for unit in data.split(b"\x00\x00\x01") if unit.strip(b"\x00")]
    return b"".join(len(unit).to_bytes(4, "big") + unit for unit in units)
