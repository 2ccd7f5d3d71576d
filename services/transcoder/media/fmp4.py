"""Reading a fragmented MP4's layout from its boxes (ISO/IEC 14496-12): where the init
segment ends, where each fragment (`moof` and its `mdat`) lies, how long it lasts and
when it starts, so a playlist can address the file by byte ranges.

Only the boxes' headers and the small metadata boxes (`moov`, `moof`) are read; the
media data is skipped, so a large file costs a few reads per fragment.

Decisions:
- The init segment is every byte before the first `moof`: `ftyp` and `moov`, and the
  `sidx` that `ladder.py`'s renditions carry after them (it indexes the fragments for
  players that read the file progressively). A fragment is a `moof` and the `mdat`
  right after it; anything after the last fragment (an `mfra`) belongs to none.
- Times are the video track's (the track whose handler is `vide`; the first track when
  there is none): a fragment lasts as long as its video samples, and starts when its
  first video sample is shown, in seconds of the track's timescale (`mdhd`): its
  decoding time (`tfdt`) plus its composition offset, less the media time the track's
  edit list starts at, plus the edit list's empty edits (a delay). So times are the
  presentation times players show, whatever reordering delay B-frames give each file.
  Sample durations and flags come from the `trun`, else the `tfhd`'s defaults, else
  the `trex`'s in `moov`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

_T = TypeVar("_T")

#: Boxes whose children are boxes, among those read here.
_CONTAINERS = frozenset({b"moov", b"trak", b"edts", b"mdia", b"mvex", b"moof", b"traf"})
#: `tfhd` flags: which optional fields follow the track ID.
_TFHD_BASE_DATA_OFFSET = 0x1
_TFHD_DESCRIPTION_INDEX = 0x2
_TFHD_DURATION = 0x8
_TFHD_SIZE = 0x10
_TFHD_FLAGS = 0x20
#: `trun` flags: which fields it has, per run and per sample.
_TRUN_DATA_OFFSET = 0x1
_TRUN_FIRST_FLAGS = 0x4
_TRUN_DURATION = 0x100
_TRUN_SIZE = 0x200
_TRUN_FLAGS = 0x400
_TRUN_COMPOSITION = 0x800
#: In sample flags: the sample is not a sync sample (not a keyframe).
_NON_SYNC = 0x10000


@dataclass(frozen=True)
class Fragment:
    #: Byte offset of the fragment (`moof` and its `mdat`) in the file.
    offset: int
    #: Bytes.
    size: int
    #: Seconds.
    duration: float


@dataclass(frozen=True)
class FragmentedLayout:
    """What `read_layout` found."""

    #: Bytes `[0, init_size)` are the init segment.
    init_size: int
    fragments: list[Fragment]
    #: When each fragment's first video sample is shown (seconds).
    starts: list[float]
    #: Whether each fragment's first video sample is a sync sample (a keyframe).
    starts_with_keyframe: list[bool]


@dataclass
class _Track:
    timescale: int = 0
    handler: bytes = b""
    #: From `trex`.
    default_duration: int = 0
    default_flags: int = 0
    #: Where the next fragment's decoding starts when it has no `tfdt`.
    next_decode_time: int = 0
    #: From the edit list: the media time shown first (track timescale), and how long
    #: nothing is shown before it (seconds).
    media_start: int = 0
    delay: float = 0.0


@dataclass
class _Run:
    """One track's samples in one fragment."""

    decode_time: int
    durations: list[int] = field(default_factory=list)
    first_flags: int | None = None
    first_composition: int | None = None


def read_layout(path: Path) -> FragmentedLayout:
    """The init segment's size and every fragment of the fragmented MP4 at `path`, with
    when each starts and whether it starts on a keyframe; ValueError if it is none."""
    tracks: dict[int, _Track] = {}
    init_size: int | None = None
    fragments: list[Fragment] = []
    starts: list[float] = []
    keyframes: list[bool] = []
    with path.open("rb") as file:
        boxes = list(_boxes(file, path.stat().st_size))
        for index, (kind, offset, size, header) in enumerate(boxes):
            if kind == b"moov":
                file.seek(offset + header)
                _read_moov(file.read(size - header), tracks)
            elif kind == b"moof":
                following = boxes[index + 1] if index + 1 < len(boxes) else None
                if following is None or following[0] != b"mdat":
                    raise ValueError(f"the moof at {offset} is not followed by an mdat")
                if init_size is None:
                    init_size = offset
                file.seek(offset + header)
                runs = _read_moof(file.read(size - header), tracks)
                track_id = _timed_track(tracks)
                track = tracks[track_id]
                run = runs.get(track_id)
                fragments.append(
                    Fragment(
                        offset=offset,
                        size=size + following[2],
                        duration=sum(run.durations) / track.timescale if run else 0.0,
                    )
                )
                starts.append(_start(run, track) if run else 0.0)
                keyframes.append(run is not None and _is_sync(run, track))
    if not tracks or init_size is None:
        raise ValueError(f"{path} is not a fragmented MP4")
    return FragmentedLayout(init_size, fragments, starts, keyframes)


def _boxes(file: BinaryIO, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """The file's top-level boxes: (type, offset, size, header size)."""
    position = 0
    while position + 8 <= end:
        file.seek(position)
        kind, size, header = _header(file.read(16), end - position)
        yield kind, position, size, header
        position += size


def _children(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The boxes inside a box's payload, recursively into the containers read here:
    (type, payload)."""
    position = 0
    while position + 8 <= len(data):
        kind, size, header = _header(data[position : position + 16], len(data) - position)
        payload = data[position + header : position + size]
        yield kind, payload
        if kind in _CONTAINERS:
            yield from _children(payload)
        position += size


def _header(head: bytes, room: int) -> tuple[bytes, int, int]:
    """A box's type, size and header size, from its first 16 bytes; `room` is what is
    left of its parent from there (all of it, for a size of 0)."""
    size, kind, header = int.from_bytes(head[:4], "big"), head[4:8], 8
    if size == 1:
        size, header = int.from_bytes(head[8:16], "big"), 16
    elif size == 0:
        size = room
    if not header <= size <= room:
        raise ValueError(f"a {kind!r} box of {size} bytes where {room} are left")
    return kind, size, header


def _read_moov(data: bytes, tracks: dict[int, _Track]) -> None:
    """Each track's ID, timescale, handler, edit list and `trex` defaults."""
    current: _Track | None = None
    movie_timescale = 0
    for kind, payload in _children(data):
        fields = _Fields(payload)
        if kind == b"mvhd":
            fields.skip_dates()
            movie_timescale = fields.uint()
        elif kind == b"tkhd":
            fields.skip_dates()
            current = tracks.setdefault(fields.uint(), _Track())
        elif kind == b"elst" and current is not None and movie_timescale:
            _read_elst(fields, current, movie_timescale)
        elif kind == b"mdhd" and current is not None:
            fields.skip_dates()
            current.timescale = fields.uint()
        elif kind == b"hdlr" and current is not None:
            fields.uint()  # pre_defined
            current.handler = fields.raw(4)
        elif kind == b"trex":
            track = tracks.setdefault(fields.uint(), _Track())
            fields.uint()  # sample description index
            track.default_duration = fields.uint()
            fields.uint()  # sample size
            track.default_flags = fields.uint()


def _read_elst(fields: _Fields, track: _Track, movie_timescale: int) -> None:
    """The edits a muxer writes to start a track at zero: empty ones (a delay, in the
    movie's timescale), then the media time shown first."""
    width = 8 if fields.version == 1 else 4
    for _ in range(fields.uint()):
        duration = fields.uint(width)
        media_time = fields.uint(width, signed=True)
        fields.uint()  # media rate
        if media_time == -1:
            track.delay += duration / movie_timescale
        else:
            track.media_start = media_time
            return


def _read_moof(data: bytes, tracks: dict[int, _Track]) -> dict[int, _Run]:
    """Each track's samples in this fragment, by track ID."""
    runs: dict[int, _Run] = {}
    track: _Track | None = None
    run: _Run | None = None
    default_duration = default_flags = 0
    for kind, payload in _children(data):
        fields = _Fields(payload)
        if kind == b"tfhd":
            track_id = fields.uint()
            if track_id not in tracks:
                raise ValueError(f"a fragment of track {track_id}, which moov does not have")
            track = tracks[track_id]
            run = runs.setdefault(track_id, _Run(track.next_decode_time))
            fields.optional(_TFHD_BASE_DATA_OFFSET, 0, size=8)
            fields.optional(_TFHD_DESCRIPTION_INDEX, 0)
            default_duration = fields.optional(_TFHD_DURATION, track.default_duration)
            fields.optional(_TFHD_SIZE, 0)
            default_flags = fields.optional(_TFHD_FLAGS, track.default_flags)
        elif kind == b"tfdt" and run is not None:
            run.decode_time = fields.uint(8 if fields.version == 1 else 4)
        elif kind == b"trun" and run is not None and track is not None:
            _read_trun(fields, run, default_duration, default_flags)
            track.next_decode_time = run.decode_time + sum(run.durations)
    return runs


def _read_trun(fields: _Fields, run: _Run, default_duration: int, default_flags: int) -> None:
    count = fields.uint()
    fields.optional(_TRUN_DATA_OFFSET, 0)
    first_flags = fields.optional(_TRUN_FIRST_FLAGS, None)
    for _ in range(count):
        duration = fields.optional(_TRUN_DURATION, default_duration)
        fields.optional(_TRUN_SIZE, 0)
        sample_flags = fields.optional(_TRUN_FLAGS, default_flags)
        # Version 1 allows negative offsets (B-frames shown before their decode time).
        composition = fields.optional(_TRUN_COMPOSITION, 0, signed=fields.version == 1)
        if run.first_flags is None:
            run.first_flags = sample_flags if first_flags is None else first_flags
            run.first_composition = composition
        run.durations.append(duration)


class _Fields:
    """A full box's payload read field by field, big-endian: its version and flags,
    then what the caller asks for, in order."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload
        self.version = payload[0] if payload else 0
        self.flags = int.from_bytes(payload[1:4], "big")
        self._at = 4

    def uint(self, size: int = 4, *, signed: bool = False) -> int:
        value = int.from_bytes(self._payload[self._at : self._at + size], "big", signed=signed)
        self._at += size
        return value

    def raw(self, size: int) -> bytes:
        value = self._payload[self._at : self._at + size]
        self._at += size
        return value

    def optional(self, flag: int, default: _T, size: int = 4, *, signed: bool = False) -> int | _T:
        """The next field if `flag` is set in the box's flags, else `default` (and the
        field is not there)."""
        return self.uint(size, signed=signed) if self.flags & flag else default

    def skip_dates(self) -> None:
        """Skip the creation and modification times: 64 bits each in version 1."""
        self.raw(16 if self.version == 1 else 8)


def _timed_track(tracks: dict[int, _Track]) -> int:
    """The track whose times the fragments are given in: the video's."""
    return next((i for i, t in tracks.items() if t.handler == b"vide"), min(tracks))


def _start(run: _Run, track: _Track) -> float:
    media_time = run.decode_time + (run.first_composition or 0)
    return (media_time - track.media_start) / track.timescale + track.delay


def _is_sync(run: _Run, track: _Track) -> bool:
    flags = track.default_flags if run.first_flags is None else run.first_flags
    return not flags & _NON_SYNC
