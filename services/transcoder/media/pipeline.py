"""Whole media jobs (hosting an upload, cutting a clip), each one synchronous call for
an executor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.transcoder.media.cut import CutResult, cut
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.playback import make_playback
from services.transcoder.media.probe import MediaInfo, MediaLimits, probe
from services.transcoder.media.thumbnail import make_thumbnail


@dataclass(frozen=True)
class PreparedMedia:
    info: MediaInfo
    playback: Path
    thumbnail: Path
    remuxed: bool


def prepare_media(
    source: Path,
    workdir: Path,
    limits: MediaLimits,
    profile: PlaybackProfile,
    thumbnail_max_width: int,
) -> PreparedMedia:
    """Probe (limits first, nothing decoded before), thumbnail, playback file.

    Raises `MediaRejected` with the human-readable reason for unusable media.
    """
    info = probe(source, limits)
    thumbnail = workdir / "thumbnail.jpg"
    make_thumbnail(source, thumbnail, info, max_width=thumbnail_max_width)
    playback = workdir / "playback.mp4"
    remuxed = make_playback(source, playback, info, profile)
    return PreparedMedia(info=info, playback=playback, thumbnail=thumbnail, remuxed=remuxed)


def cut_clip(
    source: Path,
    destination: Path,
    start_seconds: float,
    duration_seconds: float,
    limits: MediaLimits,
    profile: PlaybackProfile,
) -> CutResult:
    """Probe (limits first), then cut `[start, start + duration)` frame-accurately."""
    info = probe(source, limits)
    return cut(source, destination, start_seconds, duration_seconds, info, profile)
