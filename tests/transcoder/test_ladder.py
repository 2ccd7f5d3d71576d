"""The adaptive-streaming ladder at the media level: which rungs a source gets, the
renditions one decode writes (fragmented MP4s addressed by byte ranges, fragments lined
up across rungs), and the copied source rung."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType

from services.transcoder.media.fmp4 import Fragment, read_layout
from services.transcoder.media.ladder import (
    DEFAULT_HEIGHTS,
    Rendition,
    Rung,
    encode_renditions,
    keyframe_times,
    plan_ladder,
    read_fragments,
    remux_rendition,
)
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.playback import remux
from services.transcoder.media.probe import MediaInfo, MediaLimits, MediaRejected, probe
from tests.transcoder import media_factory as factory

GENEROUS = MediaLimits(max_duration_seconds=4 * 3600, max_width=7680, max_height=4320)
FAST = PlaybackProfile(preset="ultrafast")
SECONDS = 4
FPS = 25
#: The 720p source's rungs, as `plan_ladder` names them, and the sizes they get.
LADDER_SIZES = [(1280, 720), (854, 480), (640, 360), (426, 240)]


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ladder")


@pytest.fixture(scope="module")
def source_720p(media_dir: Path) -> Path:
    return factory.make_clip(
        media_dir / "source-720p.mp4",
        seconds=SECONDS,
        size=(1280, 720),
        fps=FPS,
        video_options={"preset": "ultrafast"},
    )


@pytest.fixture(scope="module")
def progress_reports() -> list[float]:
    return []


@pytest.fixture(scope="module")
def ladder(media_dir: Path, source_720p: Path, progress_reports: list[float]) -> list[Rendition]:
    info = probe(source_720p, GENEROUS)
    rungs = plan_ladder(info, DEFAULT_HEIGHTS, 1080)
    outputs = [(rung, media_dir / f"rung-{rung.name}.mp4") for rung in rungs]
    return encode_renditions(source_720p, outputs, info, FAST, progress_reports.append)


@pytest.fixture(scope="module")
def gop_source(media_dir: Path) -> Path:
    """H.264/AAC with B-frames and irregular keyframes: a scene cut at 0.52 s (the
    black intro ends), then one every 2 s after it."""
    return factory.make_clip(
        media_dir / "irregular-gops.mp4",
        seconds=SECONDS,
        fps=FPS,
        intro=("black", 13),
        video_options={"x264-params": "keyint=50:min-keyint=5:bframes=2"},
    )


@pytest.fixture(scope="module")
def remuxed(media_dir: Path, gop_source: Path) -> Rendition:
    return remux_rendition(gop_source, media_dir / "remuxed.mp4", probe(gop_source, GENEROUS))


def _info(width: int, height: int, rotation: int = 0) -> MediaInfo:
    return MediaInfo(
        duration_seconds=10.0,
        container="mov,mp4,m4a,3gp,3g2,mj2",
        video_codec="h264",
        width=width,
        height=height,
        rotation=rotation,
        pixel_format="yuv420p",
        frame_rate=25.0,
        audio_codec="aac",
        audio_sample_rate=48_000,
        audio_channels=2,
        video_end_seconds=10.0,
    )


def _sizes(rungs: list[Rung]) -> list[tuple[int, int]]:
    return [(rung.width, rung.height) for rung in rungs]


@pytest.mark.parametrize(
    ("source", "max_height", "sizes"),
    [
        ((320, 240), 1080, [(320, 240)]),
        ((1280, 720), 1080, LADDER_SIZES),
        ((1920, 1080), 1080, [(1920, 1080), *LADDER_SIZES]),
        ((960, 540), 1080, [(960, 540), (854, 480), (640, 360), (426, 240)]),
        ((256, 144), 1080, [(256, 144)]),
        ((3840, 2160), 1080, [(1920, 1080), *LADDER_SIZES]),
        ((1920, 1080), 720, LADDER_SIZES),
        ((1920, 1080), 600, LADDER_SIZES[1:]),
        ((1920, 1080), 200, [(356, 200)]),
    ],
)
def test_a_ladder_has_the_listed_rungs_under_the_source_and_the_cap_and_its_own(
    source: tuple[int, int], max_height: int, sizes: list[tuple[int, int]]
) -> None:
    assert _sizes(plan_ladder(_info(*source), DEFAULT_HEIGHTS, max_height)) == sizes


def test_a_portrait_video_gets_rungs_named_by_its_shorter_side() -> None:
    rungs = plan_ladder(_info(1080, 1920), DEFAULT_HEIGHTS, 1080)

    assert [rung.name for rung in rungs] == ["1080p", "720p", "480p", "360p", "240p"]
    assert _sizes(rungs) == [(1080, 1920), (720, 1280), (480, 854), (360, 640), (240, 426)]
    # Turned upright first: a landscape picture stored with a quarter turn is portrait.
    assert plan_ladder(_info(1920, 1080, rotation=90), DEFAULT_HEIGHTS, 720) == rungs[1:]


def test_rung_bitrates_come_from_the_table_or_scale_by_pixel_count() -> None:
    rungs = plan_ladder(_info(960, 540), DEFAULT_HEIGHTS, 1080)

    assert [rung.video_bitrate for rung in rungs] == [
        round(1_400_000 * (540 / 480) ** 2),
        1_400_000,
        800_000,
        400_000,
    ]


def test_a_ladder_is_a_set_of_fragmented_mp4s_covered_by_their_byte_ranges(
    ladder: list[Rendition],
) -> None:
    assert [(r.width, r.height) for r in ladder] == LADDER_SIZES
    for rendition in ladder:
        data = rendition.path.read_bytes()
        assert rendition.size_in_bytes == len(data)
        assert data[4:8] == b"ftyp"
        assert rendition.init_size == rendition.fragments[0].offset
        position = rendition.init_size
        for fragment in rendition.fragments:
            assert fragment.offset == position, rendition.path.name
            assert data[position + 4 : position + 8] == b"moof"
            position += fragment.size
        assert position == len(data)
        assert sum(f.duration for f in rendition.fragments) == pytest.approx(SECONDS)
        assert rendition.duration_seconds == pytest.approx(SECONDS)
        assert not rendition.remuxed


def test_every_fragment_decodes_from_the_init_segment_and_starts_on_a_keyframe(
    ladder: list[Rendition],
) -> None:
    for rendition in ladder:
        frames = 0
        for fragment in rendition.fragments:
            decoded = _decode_fragment(rendition, fragment)
            assert decoded, (rendition.path.name, fragment)
            assert decoded[0].key_frame
            assert decoded[0].pict_type == PictureType.I
            assert (decoded[0].width, decoded[0].height) == (rendition.width, rendition.height)
            assert len(decoded) == pytest.approx(fragment.duration * FPS)
            frames += len(decoded)
        assert frames == SECONDS * FPS


def test_keyframes_line_up_across_the_rungs_every_two_seconds(ladder: list[Rendition]) -> None:
    for rendition in ladder:
        assert keyframe_times(rendition.path) == pytest.approx([0.0, 2.0])
        assert read_layout(rendition.path).starts_with_keyframe == [True, True]
        assert factory.keyframe_seconds(rendition.path) == pytest.approx([0.0, 2.0])


def test_with_irregular_frame_times_the_first_frame_from_each_two_seconds_is_a_keyframe(
    media_dir: Path,
) -> None:
    source = factory.make_indexed_clip(media_dir / "vfr.mp4", seconds=5, vfr=True)
    times = factory.indexed_frame_times(5, vfr=True)
    rung = Rung(height=120, width=160, video_bitrate=150_000)

    [rendition] = encode_renditions(
        source, [(rung, media_dir / "vfr-120.mp4")], probe(source, GENEROUS), FAST
    )

    expected = [float(min(t for t in times if t >= grid)) for grid in (0, 2, 4)]
    assert keyframe_times(rendition.path) == pytest.approx(expected)
    assert expected != [0.0, 2.0, 4.0]  # the test means something


def test_every_rendition_has_the_same_aac_and_plays_as_a_whole_file(
    ladder: list[Rendition],
) -> None:
    sounds = {
        rendition.path: factory.packet_payloads(rendition.path, "audio") for rendition in ladder
    }
    assert len(set(map(tuple, sounds.values()))) == 1  # one encode, muxed into each
    for rendition in ladder:
        assert rendition.codecs.endswith(",mp4a.40.2")
        assert rendition.codecs.startswith("avc1.")
        assert len(rendition.codecs.split(",")[0]) == len("avc1.64001f")
        assert rendition.bandwidth >= rendition.average_bandwidth > 0
        frames = factory.decode_all(rendition.path)
        assert len(frames) == SECONDS * FPS
        assert frames[0].time == pytest.approx(0.0)
        assert (frames[0].width, frames[0].height) == (rendition.width, rendition.height)
        assert factory.decoded_audio_seconds(rendition.path) == pytest.approx(SECONDS, abs=0.03)


def test_the_ladder_reports_progress_once_per_decode(progress_reports: list[float]) -> None:
    assert progress_reports == sorted(progress_reports)
    assert progress_reports[-1] == 1.0
    assert 0 < progress_reports[0] < 0.1


def test_a_remuxed_rung_copies_the_source_packets_one_fragment_per_keyframe(
    gop_source: Path, remuxed: Rendition
) -> None:
    source_keyframes = factory.keyframe_seconds(gop_source)
    assert source_keyframes == pytest.approx([0.0, 0.52, 2.52])  # the test means something

    assert remuxed.remuxed
    for kind in ("video", "audio"):
        assert factory.packet_payloads(remuxed.path, kind) == factory.packet_payloads(
            gop_source, kind
        ), kind
    assert keyframe_times(remuxed.path) == pytest.approx(source_keyframes)
    assert len(remuxed.fragments) == len(source_keyframes)
    assert remuxed.duration_seconds == pytest.approx(SECONDS)
    assert (remuxed.width, remuxed.height) == (320, 240)
    assert remuxed.codecs.split(",")[1] == "mp4a.40.2"
    for fragment in remuxed.fragments:
        assert _decode_fragment(remuxed, fragment)[0].key_frame
    # Decoded whole, as the source: B-frames shown from zero (the edit list applies).
    frames = factory.decode_all(remuxed.path)
    assert len(frames) == SECONDS * FPS
    assert frames[0].time == pytest.approx(0.0)


def test_a_source_with_an_undecodable_packet_is_not_copied(media_dir: Path) -> None:
    whole = factory.make_clip(media_dir / "to-corrupt.mp4", seconds=2)
    damaged = factory.corrupt_packets(whole, media_dir / "corrupt.mp4", [20])
    output = media_dir / "not-copied.mp4"

    with pytest.raises(MediaRejected) as rejected:
        remux_rendition(damaged, output, probe(damaged, GENEROUS))

    assert str(rejected.value) == "video data is corrupt"
    assert not output.exists()


def test_encoded_rungs_line_up_with_the_remuxed_rung_when_given_its_keyframes(
    media_dir: Path, gop_source: Path, remuxed: Rendition
) -> None:
    info = probe(gop_source, GENEROUS)
    rungs = [Rung(height=180, width=240, video_bitrate=300_000)]
    rungs.append(Rung(height=120, width=160, video_bitrate=150_000))
    outputs = [(rung, media_dir / f"aligned-{rung.height}.mp4") for rung in rungs]

    # B-frames on both sides, in their own patterns: presentation times line up.
    veryfast = PlaybackProfile(preset="veryfast")
    encoded = encode_renditions(
        gop_source, outputs, info, veryfast, keyframe_times=keyframe_times(remuxed.path)
    )

    expected = keyframe_times(remuxed.path)
    for rendition in encoded:
        assert keyframe_times(rendition.path) == pytest.approx(expected)
        assert [f.duration for f in rendition.fragments] == pytest.approx(
            [f.duration for f in remuxed.fragments]
        )


def test_a_rotated_source_is_encoded_upright(media_dir: Path) -> None:
    # Coded picture: white top-left quadrant on black, shown turned a quarter clockwise.
    source = factory.make_clip(
        media_dir / "rotated.mp4", seconds=1, size=(640, 360), rotation=90, pattern="corner"
    )
    info = probe(source, GENEROUS)
    rungs = plan_ladder(info, DEFAULT_HEIGHTS, 1080)
    assert _sizes(rungs) == [(360, 640), (240, 426)]

    renditions = encode_renditions(
        source, [(rung, media_dir / f"upright-{rung.name}.mp4") for rung in rungs], info, FAST
    )

    for rendition in renditions:
        frame = factory.decode_all(rendition.path)[0]
        assert (frame.width, frame.height) == (rendition.width, rendition.height)
        assert factory.bright_corner(frame) == "top-right"


def test_a_silent_source_makes_silent_renditions(media_dir: Path) -> None:
    source = factory.make_clip(media_dir / "silent.mp4", seconds=1, audio=False)
    info = probe(source, GENEROUS)
    rung = Rung(height=120, width=160, video_bitrate=150_000)

    [rendition] = encode_renditions(source, [(rung, media_dir / "silent-120.mp4")], info, FAST)

    assert "," not in rendition.codecs
    with av.open(str(rendition.path)) as container:
        assert not container.streams.audio


def test_a_few_undecodable_packets_are_left_out_and_counted(media_dir: Path) -> None:
    whole = factory.make_clip(media_dir / "to-damage.mp4", seconds=2)
    damaged = factory.corrupt_packets(whole, media_dir / "damaged.mp4", [12, 18])
    rung = Rung(height=120, width=160, video_bitrate=150_000)

    [rendition] = encode_renditions(
        damaged, [(rung, media_dir / "repaired-120.mp4")], probe(damaged, GENEROUS), FAST
    )

    assert rendition.dropped_packets == 2
    assert len(factory.decode_all(rendition.path)) > 40


def test_a_source_that_does_not_decode_leaves_no_rendition(media_dir: Path) -> None:
    whole = factory.make_clip(media_dir / "to-break.mp4", seconds=2)
    broken = factory.corrupt_packets(whole, media_dir / "broken.mp4", list(range(2, 50, 4)))
    info = probe(broken, GENEROUS)
    outputs = [
        (Rung(height=180, width=240, video_bitrate=300_000), media_dir / "broken-180.mp4"),
        (Rung(height=120, width=160, video_bitrate=150_000), media_dir / "broken-120.mp4"),
    ]

    with pytest.raises(MediaRejected) as rejected:
        encode_renditions(broken, outputs, info, FAST)

    assert str(rejected.value) == "video data is corrupt"
    assert not any(path.exists() for _, path in outputs)


def test_read_fragments_gives_the_init_size_and_the_fragments(ladder: list[Rendition]) -> None:
    rendition = ladder[-1]

    assert read_fragments(rendition.path) == (rendition.init_size, list(rendition.fragments))


def test_read_fragments_reads_fragments_laid_out_otherwise(
    media_dir: Path, gop_source: Path
) -> None:
    # FFmpeg's plainest fragmenting: absolute data offsets, no edit list, no sidx, and
    # an `mfra` index after the last fragment.
    other = media_dir / "plain-fragments.mp4"
    remux(gop_source, other, movflags="+frag_keyframe+empty_moov")

    init_size, fragments = read_fragments(other)

    data = other.read_bytes()
    assert data[init_size + 4 : init_size + 8] == b"moof"
    assert fragments[-1].offset + fragments[-1].size == data.rindex(b"mfra") - 4
    assert keyframe_times(other) == pytest.approx(factory.keyframe_seconds(other))
    assert sum(f.duration for f in fragments) == pytest.approx(SECONDS)


def test_read_fragments_refuses_a_file_that_is_not_fragmented(source_720p: Path) -> None:
    with pytest.raises(ValueError, match="not a fragmented MP4"):
        read_fragments(source_720p)


def _decode_fragment(rendition: Rendition, fragment: Fragment) -> list[av.VideoFrame]:
    """What a player decodes of one fragment: the init segment and that fragment's
    bytes, as fetched by their byte ranges, concatenated."""
    with rendition.path.open("rb") as file:
        init = file.read(rendition.init_size)
        file.seek(fragment.offset)
        data = init + file.read(fragment.size)
    with av.open(io.BytesIO(data), "r", format="mp4") as container:
        return list(container.decode(video=0))
