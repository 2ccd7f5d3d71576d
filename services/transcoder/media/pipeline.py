"""The whole hosting pipeline for one upload, as one synchronous call for an executor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.transcoder.media.playback import PlaybackProfile, make_playback
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
