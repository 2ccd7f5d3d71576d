"""Whole media jobs (hosting an upload in two steps, cutting a clip), each step one
synchronous call for an executor, with an optional `Progress` callback (`progress.py`)
for the worker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.transcoder.media.cut import CutResult
from services.transcoder.media.ladder import (
    Rendition,
    Rung,
    encode_renditions,
    keyframe_times,
    plan_ladder,
    remux_rendition,
)
from services.transcoder.media.lanes import PlaybackProfile
from services.transcoder.media.playback import needs_transcode
from services.transcoder.media.probe import MediaInfo, MediaLimits, MediaRejected, probe
from services.transcoder.media.progress import Progress
from services.transcoder.media.smart_cut import smart_cut
from services.transcoder.media.thumbnail import make_thumbnail
from shared.object_keys import rendition_file_name

#: The quick-start rung's height (`quick_start`).
QUICK_START_HEIGHT = 360


@dataclass(frozen=True)
class PlayableMedia:
    """An upload made playable: probed, thumbnailed, its first rendition written."""

    info: MediaInfo
    thumbnail: Path
    first: Rendition
    #: The rungs still to make (`complete_ladder`), highest first.
    rest: list[Rung]
    #: Where the first rendition's keyframes are, when the rest must line up with them
    #: (a copied source's); None: the rungs' own 2 s grid.
    keyframe_times: list[float] | None
    #: The copied rung, when its packets were copied without decoding them: the rest of
    #: the ladder decodes the source anyway, and encodes this rung too if one does not
    #: decode (`complete_ladder`).
    unchecked: Rung | None = None


def prepare_media(
    source: Path,
    workdir: Path,
    limits: MediaLimits,
    profile: PlaybackProfile,
    ladder_heights: Sequence[int],
    thumbnail_max_width: int,
    progress: Progress | None = None,
) -> PlayableMedia:
    """Probe (limits first, nothing decoded before; the file judged whole), thumbnail,
    and the ladder's first rendition: the one that makes the video playable soonest.

    That is the source's own rung with its packets copied when a browser plays them
    (`remux_rendition`: no encoding, and no decoding either when other rungs follow:
    their decode checks the packets, see `complete_ladder`), otherwise the quick-start
    rung (`quick_start`) encoded alone; `complete_ladder` makes the rest. Raises
    `MediaRejected` with the human-readable reason for unusable media, for the same
    files and with the same codes as `cut_clip` (`probe` judges both). `progress` is
    the first rendition's.
    """
    info = probe(source, limits)
    thumbnail = workdir / "thumbnail.jpg"
    make_thumbnail(source, thumbnail, info, max_width=thumbnail_max_width)
    rungs = plan_ladder(info, ladder_heights, profile.max_height)
    top = rungs[0]
    if not needs_transcode(info, profile) and (top.width, top.height) == (info.width, info.height):
        checked = len(rungs) == 1  # nothing decodes the source after this copy
        try:
            first = remux_rendition(
                source, workdir / rendition_file_name(top.height), info, progress, check=checked
            )
        except MediaRejected:
            pass  # a packet that does not decode: the encoders leave it out
        else:
            return PlayableMedia(
                info,
                thumbnail,
                first,
                rungs[1:],
                keyframe_times(first.path),
                unchecked=None if checked else top,
            )
    quick = quick_start(rungs)
    [first] = encode_renditions(
        source, [(quick, workdir / rendition_file_name(quick.height))], info, profile, progress
    )
    return PlayableMedia(info, thumbnail, first, [r for r in rungs if r != quick], None)


def complete_ladder(
    source: Path,
    workdir: Path,
    media: PlayableMedia,
    profile: PlaybackProfile,
    progress: Progress | None = None,
) -> list[Rendition]:
    """The rest of the ladder after `prepare_media`: one decode feeding every rung's
    encoder, keyframes lined up with the first rendition's.

    That decode is also the check of a rung copied unchecked: when a packet did not
    decode, the copied rung is encoded as well (those packets left out, as in every
    encoded rung) and comes first in the list, to replace the copy.
    """
    if not media.rest:
        return []
    outputs = [(rung, workdir / rendition_file_name(rung.height)) for rung in media.rest]
    times = media.keyframe_times
    made = encode_renditions(source, outputs, media.info, profile, progress, keyframe_times=times)
    top = media.unchecked
    if top is not None and any(rendition.dropped_packets for rendition in made):
        output = (top, workdir / rendition_file_name(top.height))
        made = encode_renditions(source, [output], media.info, profile, keyframe_times=times) + made
    return made


def quick_start(rungs: Sequence[Rung]) -> Rung:
    """The rung encoded first when the source's own cannot be copied: the lowest at or
    above `QUICK_START_HEIGHT` (fast to encode, still watchable), else the highest."""
    fitting = [rung for rung in rungs if rung.height >= QUICK_START_HEIGHT]
    return min(fitting, key=lambda rung: rung.height) if fitting else rungs[0]


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
