"""Whole media jobs (hosting an upload, cutting a clip), each one synchronous call for
an executor, with an optional `Progress` callback (`progress.py`) for the worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.transcoder.media.cut import CutResult
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.playback import write_playback
from services.transcoder.media.probe import MediaInfo, MediaLimits, probe
from services.transcoder.media.progress import Progress
from services.transcoder.media.smart_cut import smart_cut
from services.transcoder.media.thumbnail import make_thumbnail


@dataclass(frozen=True)
class PreparedMedia:
    info: MediaInfo
    playback: Path
    thumbnail: Path
    remuxed: bool
    #: Source packets left out of the playback file because they did not decode.
    dropped_packets: int


def prepare_media(
    source: Path,
    workdir: Path,
    limits: MediaLimits,
    profile: PlaybackProfile,
    thumbnail_max_width: int,
    progress: Progress | None = None,
) -> PreparedMedia:
    """Probe (limits first, nothing decoded before; the file judged whole), thumbnail,
    playback file.

    Raises `MediaRejected` with the human-readable reason for unusable media, for the
    same files and with the same codes as `cut_clip` (`probe` judges both).
    `progress` is the playback file's: probe and thumbnail read a frame or two, the
    playback file is nearly all the work. It is the last step, so its 1.0 is the job's.
    """
    info = probe(source, limits)
    thumbnail = workdir / "thumbnail.jpg"
    make_thumbnail(source, thumbnail, info, max_width=thumbnail_max_width)
    playback = workdir / "playback.mp4"
    written = write_playback(source, playback, info, profile, progress)
    return PreparedMedia(
        info=info,
        playback=playback,
        thumbnail=thumbnail,
        remuxed=written.remuxed,
        dropped_packets=written.dropped_packets,
    )


def cut_clip(
    source: Path,
    destination: Path,
    start_seconds: float,
    duration_seconds: float,
    limits: MediaLimits,
    profile: PlaybackProfile,
    progress: Progress | None = None,
    info: MediaInfo | None = None,
) -> CutResult:
    """Probe (limits first) unless `info` is the source's probe already, then cut
    `[start, start + duration)` frame-accurately, copying the source's whole groups of
    pictures where it can (`smart_cut`); `progress` is the cut's."""
    if info is None:
        info = probe(source, limits)
    return smart_cut(source, destination, start_seconds, duration_seconds, info, profile, progress)
