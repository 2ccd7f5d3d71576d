"""Progress reports of the media jobs: fractions in [0, 1] that never go back, ending
with exactly one 1.0 when the job succeeded and none when it failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.transcoder.media import playback
from services.transcoder.media.cut import cut
from services.transcoder.media.errors import ENCODING_FAILED, MAX_DECODE_ERRORS
from services.transcoder.media.ladder import DEFAULT_HEIGHTS
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.pipeline import cut_clip, prepare_media
from services.transcoder.media.playback import make_playback, remux, transcode
from services.transcoder.media.probe import MediaLimits, MediaRejected, probe
from services.transcoder.media.progress import Meter, Progress
from tests.transcoder import media_factory as factory

GENEROUS = MediaLimits(max_duration_seconds=4 * 3600, max_width=7680, max_height=4320)
SMALL = PlaybackProfile(max_height=120, preset="ultrafast")
SECONDS = 3


class Recorder:
    """A `Progress` that keeps every fraction it is told."""

    def __init__(self) -> None:
        self.fractions: list[float] = []

    def __call__(self, fraction: float) -> None:
        self.fractions.append(fraction)

    def assert_finished(self) -> None:
        """Rising through the job, within [0, 1], and one 1.0 at the very end."""
        fractions = self.fractions
        assert fractions, "no progress reported"
        assert fractions == sorted(fractions)
        assert all(0.0 <= fraction <= 1.0 for fraction in fractions)
        assert any(0.0 < fraction < 1.0 for fraction in fractions), fractions
        assert fractions[-1] == 1.0
        assert fractions.count(1.0) == 1

    def assert_unfinished(self) -> None:
        assert self.fractions == sorted(self.fractions)
        assert all(0.0 <= fraction < 1.0 for fraction in self.fractions), self.fractions


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("progress")


@pytest.fixture(scope="module")
def h264_mp4(media_dir: Path) -> Path:
    return factory.make_clip(media_dir / "clip.mp4", seconds=SECONDS, size=(160, 120))


@pytest.fixture(scope="module")
def vp9_webm(media_dir: Path) -> Path:
    return factory.make_clip(
        media_dir / "clip.webm",
        seconds=SECONDS,
        size=(160, 120),
        video_codec="libvpx-vp9",
        audio_codec="libopus",
        video_options={"deadline": "realtime", "cpu-used": "8"},
    )


@pytest.fixture(scope="module")
def bframes_mp4(media_dir: Path) -> Path:
    # B-frames: the packets' times come out of order.
    return factory.make_indexed_clip(media_dir / "bframes.mp4", seconds=SECONDS, bframes=2)


def test_transcode_reports_its_progress(vp9_webm: Path, tmp_path: Path) -> None:
    recorder = Recorder()

    transcode(vp9_webm, tmp_path / "out.mp4", probe(vp9_webm, GENEROUS), SMALL, recorder)

    recorder.assert_finished()
    assert len(recorder.fractions) > 10  # packet by packet, not only at the end


def test_remux_reports_its_progress(h264_mp4: Path, tmp_path: Path) -> None:
    recorder = Recorder()

    remux(h264_mp4, tmp_path / "out.mp4", recorder)

    recorder.assert_finished()
    assert len(recorder.fractions) > 10


@pytest.mark.parametrize("source", ["h264_mp4", "vp9_webm"])
def test_make_playback_reports_its_progress_either_way(
    request: pytest.FixtureRequest, tmp_path: Path, source: str
) -> None:
    src: Path = request.getfixturevalue(source)
    recorder = Recorder()

    make_playback(src, tmp_path / "out.mp4", probe(src, GENEROUS), SMALL, recorder)

    recorder.assert_finished()


def test_the_transcode_after_a_refused_remux_goes_on_from_where_it_stopped(
    h264_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused_remux(src: Path, dst: Path, progress: Progress | None = None) -> None:
        assert progress is not None
        progress(0.6)
        raise MediaRejected(ENCODING_FAILED)

    monkeypatch.setattr(playback, "remux", refused_remux)
    info = probe(h264_mp4, GENEROUS)
    recorder = Recorder()

    remuxed = make_playback(h264_mp4, tmp_path / "out.mp4", info, SMALL, recorder)

    assert not remuxed
    recorder.assert_finished()
    assert recorder.fractions[0] == 0.6


def test_cut_reports_its_progress_across_the_span(bframes_mp4: Path, tmp_path: Path) -> None:
    info = probe(bframes_mp4, GENEROUS)
    recorder = Recorder()

    result = cut(bframes_mp4, tmp_path / "out.mp4", 0.5, 2.0, info, SMALL, recorder)

    recorder.assert_finished()
    assert result == cut(bframes_mp4, tmp_path / "again.mp4", 0.5, 2.0, info, SMALL)


def test_the_whole_jobs_report_one_final_fraction(
    h264_mp4: Path, bframes_mp4: Path, tmp_path: Path
) -> None:
    prepared, clipped = Recorder(), Recorder()

    prepare_media(
        h264_mp4, tmp_path, GENEROUS, SMALL, DEFAULT_HEIGHTS, thumbnail_max_width=160,
        progress=prepared,
    )  # fmt: skip
    cut_clip(bframes_mp4, tmp_path / "clip.mp4", 1.0, 1.5, GENEROUS, SMALL, progress=clipped)

    prepared.assert_finished()
    clipped.assert_finished()


def test_a_cut_starting_beyond_the_end_reports_no_completion(
    bframes_mp4: Path, tmp_path: Path
) -> None:
    info = probe(bframes_mp4, GENEROUS)
    recorder = Recorder()

    with pytest.raises(MediaRejected):
        cut(bframes_mp4, tmp_path / "out.mp4", SECONDS + 1, 1.0, info, SMALL, recorder)

    recorder.assert_unfinished()


def test_a_cut_after_the_last_picture_reports_no_completion(tmp_path: Path) -> None:
    # The container runs on with audio: only the cut finds there is no picture there.
    src = factory.make_indexed_clip(tmp_path / "short-video.mp4", seconds=2, audio_seconds=3)
    recorder = Recorder()

    with pytest.raises(MediaRejected):
        cut(src, tmp_path / "out.mp4", 2.5, 0.4, probe(src, GENEROUS), SMALL, recorder)

    recorder.assert_unfinished()


def test_a_source_found_corrupt_partway_reports_no_completion(
    media_dir: Path, tmp_path: Path
) -> None:
    # Whole and decodable at first; from 2 s on, more packets fail than are tolerated.
    whole = factory.make_clip(media_dir / "whole.mp4", seconds=SECONDS)
    bad = list(range(50, 50 + 2 * (MAX_DECODE_ERRORS + 1), 2))
    corrupt = factory.corrupt_packets(whole, media_dir / "corrupt.mp4", bad)
    info = probe(corrupt, GENEROUS)
    by_remux, by_transcode = Recorder(), Recorder()

    with pytest.raises(MediaRejected):
        make_playback(corrupt, tmp_path / "out.mp4", info, PlaybackProfile(), by_remux)
    with pytest.raises(MediaRejected):
        transcode(corrupt, tmp_path / "out.mp4", info, SMALL, by_transcode)

    by_remux.assert_unfinished()
    by_transcode.assert_unfinished()
    assert by_remux.fractions  # it got partway before the data turned bad


def test_the_meter_clamps_and_never_goes_back() -> None:
    recorder = Recorder()
    meter = Meter(recorder, start=10.0, end=14.0)

    for seconds in (9.0, 10.0, 11.0, 10.5, 12.0, 11.5, 14.0, 20.0):
        meter.at(seconds)
    meter.done()

    assert recorder.fractions == [0.25, 0.5, 1.0]
