"""Hosting's two steps (`pipeline.prepare_media`, then `complete_ladder`): a source a
browser plays is listed from a copy of its own packets, made without decoding them
when other rungs follow, and the ladder's decode of the source checks that copy; when a
packet does not decode, the copied rung is encoded too, to replace it."""

from __future__ import annotations

from pathlib import Path

from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.pipeline import complete_ladder, prepare_media
from services.transcoder.media.probe import MediaLimits
from tests.transcoder import media_factory as factory
from tests.transcoder.test_bad_media import decoded_cleanly

LIMITS = MediaLimits(max_duration_seconds=3600, max_width=4096, max_height=4096)
PROFILE = PlaybackProfile(preset="ultrafast")
HEIGHTS = (720, 480, 360, 240)
SIZE = (640, 360)  # rungs 360 (the source's own) and 240


def test_a_clean_source_is_listed_from_its_copy_and_the_ladder_adds_the_rest(
    tmp_path: Path,
) -> None:
    source = factory.make_clip(tmp_path / "clean.mp4", seconds=3, size=SIZE)

    playable = prepare_media(source, tmp_path, LIMITS, PROFILE, HEIGHTS, thumbnail_max_width=160)
    rest = complete_ladder(source, tmp_path, playable, PROFILE)

    assert (playable.first.height, playable.first.remuxed) == (360, True)
    assert playable.unchecked is not None  # copied without decoding: 240 follows
    assert [(r.height, r.remuxed, r.dropped_packets) for r in rest] == [(240, False, 0)]


def test_a_copy_holding_packets_that_do_not_decode_is_replaced_by_an_encoded_rung(
    tmp_path: Path,
) -> None:
    whole = factory.make_clip(tmp_path / "whole.mp4", seconds=3, size=SIZE)
    source = factory.corrupt_packets(whole, tmp_path / "damaged.mp4", [12, 18, 40])

    playable = prepare_media(source, tmp_path, LIMITS, PROFILE, HEIGHTS, thumbnail_max_width=160)
    rest = complete_ladder(source, tmp_path, playable, PROFILE)

    assert (playable.first.height, playable.first.remuxed) == (360, True)  # listed at once
    assert [(r.height, r.remuxed, r.dropped_packets) for r in rest] == [
        (360, False, 3),  # the copy's replacement, the damaged packets left out
        (240, False, 3),
    ]
    assert decoded_cleanly(rest[0].path) == 72
