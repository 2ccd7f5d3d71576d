"""Bad media, judged alike by both media paths.

Every file of a corpus made on the spot with PyAV (garbage, damaged clips, odd but valid
clips) goes through hosting (`prepare_media`) and trimming (`cut_clip` of its first
second, or of all of it when shorter). Each path either ends with an output that decodes
cleanly, or refuses the file with a reason and its code; and the two paths agree: both
succeed, or both fail with the same code. Then one test per reported defect (issue 10).

The corpus is made once for the module and each file's two outcomes are computed once,
on first use, so a file that crashes a path fails its own tests only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from av.video.frame import VideoFrame

from services.transcoder.media.errors import MAX_DECODE_ERRORS, MediaRejected
from services.transcoder.media.ladder import DEFAULT_HEIGHTS
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.pipeline import cut_clip, prepare_media
from services.transcoder.media.probe import MediaLimits, frame_seconds, probe
from tests.transcoder import media_factory as factory

LIMITS = MediaLimits(max_duration_seconds=600, max_width=7680, max_height=4320)
PROFILE = PlaybackProfile(max_height=240, preset="ultrafast")
#: What a trim of each file asks for: its first second, or all of it when shorter.
TRIM_SECONDS = 1.0
_VP9_FAST = {"deadline": "realtime", "cpu-used": "8"}
_X265_QUIET = {"x265-params": "log-level=error"}
_SVT_AV1_FAST = {"preset": "12", "svtav1-params": "log-level=1"}

#: A corpus file: made from the folder it goes in (and the shared sources made first).
Make = Callable[[Path], Path]


def _sources(folder: Path) -> dict[str, Path]:
    """The clips the damaged files are made from."""
    return {
        # `moov` first: a truncated copy keeps its index.
        "faststart": factory.make_clip(folder / "faststart.mp4", seconds=3, faststart=True),
        # `moov` last: a truncated copy loses it.
        "plain": factory.make_clip(folder / "plain.mp4", seconds=3),
        "matroska": factory.make_clip(folder / "source.mkv", seconds=3),
        "jpeg": factory.make_still_image(folder / "source.jpg"),
    }


def _corpus(sources: dict[str, Path]) -> dict[str, Make]:
    clip = factory.make_clip
    return {
        "random bytes": lambda d: factory.make_random_bytes(d / "noise.bin"),
        "plain text": lambda d: factory.make_text_file(d / "notes.mp4"),
        "mp4 cut at 10 %": lambda d: factory.truncate(sources["faststart"], d / "cut10.mp4", 0.1),
        "mp4 cut at 50 %": lambda d: factory.truncate(sources["faststart"], d / "cut50.mp4", 0.5),
        "mp4 cut at 90 %": lambda d: factory.truncate(sources["faststart"], d / "cut90.mp4", 0.9),
        "mp4 cut before its moov": lambda d: factory.truncate(
            sources["plain"], d / "no-moov.mp4", 0.9
        ),
        "matroska cut at 50 %": lambda d: factory.truncate(
            sources["matroska"], d / "cut50.mkv", 0.5
        ),
        "header claiming 10 h": lambda d: factory.claim_duration(
            sources["matroska"], d / "huge.mkv", 36_000
        ),
        "header claiming 30 s of 3": lambda d: factory.claim_duration(
            sources["matroska"], d / "liar.mkv", 30
        ),
        "audio only": lambda d: factory.make_audio_only(d / "song.m4a", seconds=1),
        "png image": lambda d: factory.make_still_image(d / "still.png", codec="png"),
        "jpeg image": lambda d: factory.make_still_image(d / "still.jpg"),
        "1x1 video": lambda d: clip(
            d / "dot.mp4", seconds=1, size=(1, 1), pix_fmt="yuv444p", audio=False
        ),
        "33x17 video": lambda d: clip(
            d / "odd.webm",
            seconds=1,
            size=(33, 17),
            video_codec="libvpx-vp9",
            audio_codec="libopus",
            video_options=_VP9_FAST,
        ),
        "rotated 90": lambda d: clip(d / "rotated.mp4", seconds=1, rotation=90),
        "variable frame rate": lambda d: factory.make_indexed_clip(
            d / "vfr.mp4", seconds=2, vfr=True
        ),
        "10-bit h264": lambda d: clip(d / "10bit.mp4", seconds=1, pix_fmt="yuv420p10le"),
        "hevc": lambda d: clip(
            d / "hevc.mp4", seconds=1, video_codec="libx265", video_options=_X265_QUIET
        ),
        # libsvtav1 is in PyAV 18's FFmpeg build (`av.codecs_available`).
        "av1": lambda d: clip(
            d / "av1.mp4", seconds=1, video_codec="libsvtav1", video_options=_SVT_AV1_FAST
        ),
        "vp9 webm": lambda d: clip(
            d / "vp9.webm",
            seconds=1,
            video_codec="libvpx-vp9",
            audio_codec="libopus",
            video_options=_VP9_FAST,
        ),
        "webm with no duration (MediaRecorder)": lambda d: clip(
            d / "recorded.webm",
            seconds=2,
            video_codec="libvpx-vp9",
            audio_codec="libopus",
            video_options=_VP9_FAST,
            live=True,
        ),
        "mpeg-4 mp3 avi": lambda d: clip(
            d / "old.avi", seconds=3, video_codec="mpeg4", audio_codec="libmp3lame"
        ),
        "mpeg-ts": lambda d: clip(d / "broadcast.ts", seconds=2, start_seconds=10),
        "matroska with subtitles": lambda d: factory.add_subtitles(
            sources["plain"], d / "subtitled.mkv", [(0.5, 1.5, "Hello"), (2.0, 2.8, "World")]
        ),
        # Packets 12 and 18 lie in the trimmed second, 40 after it.
        "a few corrupted packets": lambda d: factory.corrupt_packets(
            sources["plain"], d / "damaged.mp4", [12, 18, 40]
        ),
        "many corrupted packets": lambda d: factory.corrupt_packets(
            sources["plain"], d / "ruined.mp4", list(range(2, 2 + 2 * (MAX_DECODE_ERRORS + 1), 2))
        ),
        "jpeg then mp4": lambda d: factory.prepend(sources["jpeg"], sources["plain"], d / "j.mp4"),
        "mp4 then zip": lambda d: factory.append_zip(sources["plain"], d / "zipped.mp4"),
    }


#: What each file comes to: a failure code, or None for processed. Both paths agree on
#: every one (`test_both_paths_agree`); this pins which way.
EXPECTED: dict[str, str | None] = {
    "random bytes": "not_media",
    "plain text": "not_media",
    "mp4 cut at 10 %": "corrupt_media",
    "mp4 cut at 50 %": "corrupt_media",
    "mp4 cut at 90 %": "corrupt_media",
    "mp4 cut before its moov": "not_media",
    "matroska cut at 50 %": "corrupt_media",
    "header claiming 10 h": "too_long",
    "header claiming 30 s of 3": "corrupt_media",
    "audio only": "no_video_stream",
    "png image": "no_video_stream",
    "jpeg image": "no_video_stream",
    "1x1 video": None,
    "33x17 video": None,
    "rotated 90": None,
    "variable frame rate": None,
    "10-bit h264": None,
    "hevc": None,
    "av1": None,
    "vp9 webm": None,
    "webm with no duration (MediaRecorder)": None,
    "mpeg-4 mp3 avi": None,
    "mpeg-ts": None,
    "matroska with subtitles": None,
    "a few corrupted packets": None,
    "many corrupted packets": "corrupt_media",
    "jpeg then mp4": "not_media",
    "mp4 then zip": None,
}


#: The processed files that lose packets which do not decode (in the trimmed second too).
DAMAGED = {"a few corrupted packets"}


@dataclass(frozen=True)
class Outcome:
    """How one path ended: an output file, or a rejection."""

    output: Path | None = None
    dropped_packets: int = 0
    reason: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Judged:
    source: Path
    hosting: Outcome
    trimming: Outcome
    #: The trim's span: [0, asked).
    asked: float
    #: One frame of the source, on average.
    frame: float


class Corpus:
    """The corpus files, and each one's outcomes through both paths, made on first use."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._makers = _corpus(_sources(folder))
        self._judged: dict[str, Judged] = {}

    def names(self) -> list[str]:
        return list(self._makers)

    def judged(self, name: str) -> Judged:
        if name not in self._judged:
            folder = self._folder / name.replace(" ", "-")
            folder.mkdir()
            self._judged[name] = _judge(self._makers[name](folder), folder)
        return self._judged[name]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("bad-media"))


def _judge(source: Path, folder: Path) -> Judged:
    try:
        info = probe(source, LIMITS)
        claimed, frame = info.duration_seconds, frame_seconds(info.frame_rate)
    except MediaRejected:
        claimed, frame = TRIM_SECONDS, frame_seconds(None)  # refused anyway: any span
    asked = min(TRIM_SECONDS, claimed)
    try:
        prepared = prepare_media(
            source, folder, LIMITS, PROFILE, DEFAULT_HEIGHTS, thumbnail_max_width=160
        )
        hosting = Outcome(
            output=prepared.first.path, dropped_packets=prepared.first.dropped_packets
        )
    except MediaRejected as exc:
        hosting = Outcome(reason=exc.reason, code=exc.code)
    clip = folder / "clip.mp4"
    try:
        cut = cut_clip(source, clip, 0.0, asked, LIMITS, PROFILE)
        trimming = Outcome(output=clip, dropped_packets=cut.dropped_packets)
    except MediaRejected as exc:
        trimming = Outcome(reason=exc.reason, code=exc.code)
    return Judged(source=source, hosting=hosting, trimming=trimming, asked=asked, frame=frame)


CORPUS_NAMES = list(EXPECTED)


def test_the_expectations_cover_the_whole_corpus(corpus: Corpus) -> None:
    assert corpus.names() == CORPUS_NAMES


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_both_paths_agree(corpus: Corpus, name: str) -> None:
    judged = corpus.judged(name)

    assert (judged.hosting.output is None) == (judged.trimming.output is None), judged
    assert judged.hosting.code == judged.trimming.code, judged
    assert judged.hosting.code == EXPECTED[name], judged


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_each_path_writes_a_clean_output_or_says_why_not(corpus: Corpus, name: str) -> None:
    judged = corpus.judged(name)

    for outcome in (judged.hosting, judged.trimming):
        if outcome.output is None:
            assert outcome.reason
            assert outcome.code
            assert MediaRejected(outcome.reason).code == outcome.code
        else:
            assert outcome.reason is None
            assert decoded_cleanly(outcome.output) > 0
            # Left-out packets are said; a sound file loses none.
            assert (outcome.dropped_packets > 0) == (name in DAMAGED)
    if judged.trimming.output is not None:
        seconds = video_seconds(judged.trimming.output)
        assert seconds == pytest.approx(judged.asked, abs=judged.frame)


def test_the_corpus_is_what_it_says(corpus: Corpus) -> None:
    # Exotic files are easy to get subtly wrong; these are the properties named.
    def info(name: str) -> tuple[str, str | None, int, int, int]:
        described = probe(corpus.judged(name).source, LIMITS)
        return (
            described.video_codec,
            described.pixel_format,
            described.width,
            described.height,
            described.rotation,
        )

    assert info("1x1 video")[2:4] == (1, 1)
    assert info("33x17 video")[:4] == ("vp9", "yuv420p", 33, 17)
    assert info("rotated 90")[4] == 90
    assert info("10-bit h264")[:2] == ("h264", "yuv420p10le")
    assert info("hevc")[0] == "hevc"
    assert info("av1")[0] == "av1"
    assert info("mpeg-4 mp3 avi")[0] == "mpeg4"
    with av.open(str(corpus.judged("matroska with subtitles").source)) as container:
        assert [s.type for s in container.streams] == ["video", "audio", "subtitle"]


# --- The defects of issue 10, one test each ---


def test_defect_1_a_valid_mpeg4_mp3_avi_is_hosted_though_its_header_counts_a_frame_more(
    tmp_path: Path,
) -> None:
    # What `ffmpeg -f lavfi -i testsrc -f lavfi -i sine -t 3 -c:v mpeg4 -c:a libmp3lame`
    # makes: the AVI header says 76 frames, 75 packets are there, 3.04 s of pictures.
    source = factory.make_clip(
        tmp_path / "x.avi", seconds=3, video_codec="mpeg4", audio_codec="libmp3lame"
    )
    with av.open(str(source)) as container:
        video = container.streams.video[0]
        packets = sum(1 for packet in container.demux(video) if packet.size)
        assert (video.frames, packets) == (76, 75)

    prepared = prepare_media(
        source, tmp_path, LIMITS, PROFILE, DEFAULT_HEIGHTS, thumbnail_max_width=160
    )
    clip = tmp_path / "clip.mp4"
    cut = cut_clip(source, clip, 2.0, 1.0, LIMITS, PROFILE)

    assert decoded_cleanly(prepared.first.path) == 75
    assert prepared.info.duration_seconds == pytest.approx(3.04)
    assert cut.duration_seconds == pytest.approx(1.0, abs=1e-3)
    assert decoded_cleanly(clip) > 0


@pytest.mark.parametrize("start", [0.0, 0.5, 2.0])
def test_defect_2_a_truncated_faststart_mp4_is_refused_alike_whatever_the_span(
    tmp_path: Path, start: float
) -> None:
    # The container claims 2 s; the data stops at about 0.9 s.
    whole = factory.make_clip(tmp_path / "whole.mp4", seconds=2, faststart=True)
    source = factory.truncate(whole, tmp_path / "cut.mp4", fraction=0.5)
    clip = tmp_path / "clip.mp4"

    with pytest.raises(MediaRejected) as hosting:
        prepare_media(source, tmp_path, LIMITS, PROFILE, DEFAULT_HEIGHTS, thumbnail_max_width=160)
    with pytest.raises(MediaRejected) as trimming:
        cut_clip(source, clip, start, 1.0, LIMITS, PROFILE)  # never a 0.92 s clip

    assert str(hosting.value) == str(trimming.value) == "video data is truncated"
    assert hosting.value.code == trimming.value.code == "corrupt_media"
    assert not clip.exists()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_defect_2_a_video_track_shorter_than_its_audio_is_not_truncated(
    tmp_path: Path, suffix: str
) -> None:
    # The rule holds the video to its own claimed length where the container states one
    # (MP4), and holds all the data to the container's length otherwise (Matroska).
    source = factory.make_indexed_clip(tmp_path / f"short{suffix}", seconds=2, audio_seconds=3)

    info = probe(source, LIMITS)

    assert info.duration_seconds == pytest.approx(3.0, abs=0.05)
    assert info.video_end_seconds == pytest.approx(2.0, abs=1e-3)


def test_defect_3_corrupted_packets_are_left_out_and_counted_by_both_paths(
    tmp_path: Path,
) -> None:
    # An H.264/AAC MP4 a browser plays as it is: hosting would copy its packets.
    whole = factory.make_clip(tmp_path / "whole.mp4", seconds=3)
    source = factory.corrupt_packets(whole, tmp_path / "damaged.mp4", [12, 18, 40])
    clip = tmp_path / "clip.mp4"

    prepared = prepare_media(
        source, tmp_path, LIMITS, PROFILE, DEFAULT_HEIGHTS, thumbnail_max_width=160
    )
    cut = cut_clip(source, clip, 0.0, 1.0, LIMITS, PROFILE)

    assert not prepared.first.remuxed  # the copy did not decode: encoded instead
    assert prepared.first.dropped_packets == 3
    assert decoded_cleanly(prepared.first.path) == 72
    assert cut.dropped_packets == 2  # 40 is after the span
    assert decoded_cleanly(clip) > 0
    assert cut.duration_seconds == pytest.approx(1.0, abs=1e-3)


def test_defect_3_too_many_corrupted_packets_fail_both_paths_alike(tmp_path: Path) -> None:
    whole = factory.make_clip(tmp_path / "whole.mp4", seconds=3)
    bad = list(range(2, 2 + 2 * (MAX_DECODE_ERRORS + 1), 2))  # all in the first second
    source = factory.corrupt_packets(whole, tmp_path / "ruined.mp4", bad)

    with pytest.raises(MediaRejected) as hosting:
        prepare_media(source, tmp_path, LIMITS, PROFILE, DEFAULT_HEIGHTS, thumbnail_max_width=160)
    with pytest.raises(MediaRejected) as trimming:
        cut_clip(source, tmp_path / "clip.mp4", 0.0, 1.0, LIMITS, PROFILE)

    assert str(hosting.value) == str(trimming.value) == "video data is corrupt"
    assert hosting.value.code == "corrupt_media"


@pytest.mark.parametrize("duration", [1e-300, 0.01, 0.039])
def test_defect_4_a_span_shorter_than_one_frame_is_refused_as_such(
    tmp_path: Path, duration: float
) -> None:
    source = factory.make_clip(tmp_path / "clip25.mp4", seconds=2, fps=25)
    clip = tmp_path / "clip.mp4"

    with pytest.raises(MediaRejected) as rejected:
        cut_clip(source, clip, 0.5, duration, LIMITS, PROFILE)

    assert str(rejected.value) == "the span is shorter than one frame"
    assert rejected.value.code == "span_too_short"
    assert not clip.exists()


def test_defect_4_a_span_of_exactly_one_frame_is_cut(tmp_path: Path) -> None:
    source = factory.make_clip(tmp_path / "clip25.mp4", seconds=2, fps=25)
    clip = tmp_path / "clip.mp4"

    cut = cut_clip(source, clip, 0.48, 0.04, LIMITS, PROFILE)  # frame 12, exactly

    assert cut.frames == 1
    assert decoded_cleanly(clip) == 1


def decoded_cleanly(path: Path) -> int:
    """Decode every video and audio frame of `path` (PyAV raises on any error); return
    the video frames."""
    with av.open(str(path)) as container:
        streams = [container.streams.video[0], *container.streams.audio]
        return sum(isinstance(frame, VideoFrame) for frame in container.decode(*streams))


def video_seconds(path: Path) -> float:
    """From the first video frame's start to where the last one stops showing."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.time_base is not None
        spans = [
            (packet.pts, packet.pts + packet.duration)
            for packet in container.demux(video)
            if packet.size and packet.pts is not None
        ]
    return float(
        (max(end for _, end in spans) - min(start for start, _ in spans)) * video.time_base
    )
