"""Every event Kino publishes: the envelope and one frozen pydantic model per type.

The routing key of a message is its event type (`video.uploaded`). Models are
validated on publish and on consume; consumers ignore unknown fields so that a
producer can add fields without breaking older consumers (bump `version` for
changes that are not additive).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class Event(BaseModel):
    """Base of every event's `data`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    event_version: ClassVar[int] = 1


class Envelope(BaseModel):
    """What travels on the wire: metadata plus the event's `data`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None
    data: dict[str, Any]

    @classmethod
    def wrap(cls, event: Event, *, correlation_id: str | None) -> Envelope:
        return cls(
            type=event.event_type,
            version=event.event_version,
            correlation_id=correlation_id,
            data=event.model_dump(mode="json"),
        )


class FailureCode(StrEnum):
    """Why a job failed, for machines; `failure_reason` says it for people. Stable:
    clients may branch on these (the README lists them)."""

    # the file
    NOT_MEDIA = "not_media"
    NO_VIDEO_STREAM = "no_video_stream"
    UNSUPPORTED_CODEC = "unsupported_codec"
    CORRUPT_MEDIA = "corrupt_media"
    TOO_LONG = "too_long"
    RESOLUTION_TOO_HIGH = "resolution_too_high"
    START_BEYOND_END = "start_beyond_end"
    SPAN_TOO_SHORT = "span_too_short"
    SOURCE_MISSING = "source_missing"
    # the platform
    WORKER_CRASHED = "worker_crashed"
    STALLED = "stalled"
    STORAGE_ERROR = "storage_error"
    INTERNAL_ERROR = "internal_error"


class UserRegistered(Event):
    event_type = "user.registered"

    user_id: str
    email: str


class VideoUploaded(Event):
    """An upload reached object storage; the transcoder should process it."""

    event_type = "video.uploaded"

    video_id: str
    user_id: str
    object_key: str
    file_name: str
    content_type: str
    #: Grows with each retry; the result carries it back, so a late result of an
    #: earlier attempt changes nothing.
    attempt: int = Field(default=1, ge=1)


class Rendition(BaseModel):
    """One rung of a video's ladder: a fragmented MP4 (CMAF) and its HLS media
    playlist, which addresses the file's fragments by byte range."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    #: The rendition file (also a progressive MP4: init segment first).
    key: str
    #: Its media playlist, with the file named relatively (catalog serves it with the
    #: file's presigned URL in its place).
    playlist_key: str
    size_in_bytes: int = Field(ge=0)
    #: RFC 6381 codecs, as HLS `CODECS` wants them.
    codecs: str
    #: Peak and average bits per second (HLS `BANDWIDTH`, `AVERAGE-BANDWIDTH`).
    bandwidth: int = Field(gt=0)
    average_bandwidth: int = Field(gt=0)
    #: The source's packets copied (True) or encoded (False).
    remuxed: bool = False


class VideoProcessed(Event):
    """The video is playable: its first rendition (or, from older producers, its one
    playback file) is stored. Further rungs follow in `VideoRenditionsAdded`."""

    event_type = "video.processed"

    video_id: str
    duration_seconds: float
    size_in_bytes: int
    video_type: str
    playback_key: str
    thumbnail_key: str
    attempt: int = Field(default=1, ge=1)
    #: Source packets left out of the playback file because they did not decode (the
    #: pictures after one are concealed by the decoder); 0 for a clean source.
    dropped_packets: int = Field(default=0, ge=0)
    #: The renditions stored so far (`playback_key` is the highest one's file).
    renditions: list[Rendition] = Field(default_factory=list)
    #: Heights of the rungs still being made.
    ladder_pending: list[int] = Field(default_factory=list)


class VideoRenditionsAdded(Event):
    """More rungs of a playable video's ladder are stored; `ladder_pending` is what is
    still to come (empty: the ladder is complete)."""

    event_type = "video.renditions_added"

    video_id: str
    renditions: list[Rendition]
    ladder_pending: list[int] = Field(default_factory=list)
    #: Why the rest of the ladder could not be made (the video stays playable).
    failure_reason: str | None = None
    attempt: int = Field(default=1, ge=1)
    #: Source packets left out because they did not decode (a copied rung that held
    #: them is among `renditions`, encoded, to replace the copy).
    dropped_packets: int = Field(default=0, ge=0)


class VideoFailed(Event):
    event_type = "video.failed"

    video_id: str
    failure_reason: str
    #: A `FailureCode` (text, so that a newer producer's code does not break a consumer).
    failure_code: str = FailureCode.INTERNAL_ERROR
    attempt: int = Field(default=1, ge=1)


class VideoDeleted(Event):
    """The owner deleted a video; every stored object under these keys goes."""

    event_type = "video.deleted"

    video_id: str
    object_keys: list[str]
    #: Every object under these prefixes goes too (a video's renditions and playlists).
    object_prefixes: list[str] = Field(default_factory=list)


#: The trim request's id. Version 1 of the trim events called it `request_id`, a name
#: that collided with the HTTP request id in the logs; messages of version 1 still read.
_TRIM_ID = Field(validation_alias=AliasChoices("trim_id", "request_id"))


class TrimRequested(Event):
    """Cut `[start, start + duration)` of the source. `attempt` grows with each restart;
    results carry it back so a late result of an earlier attempt changes nothing."""

    event_type = "trim.requested"
    event_version = 2

    trim_id: str = _TRIM_ID
    video_id: str
    user_id: str
    source_key: str
    start_seconds: float = Field(ge=0)
    duration_seconds: float = Field(gt=0)
    attempt: int = Field(default=1, ge=1)


class TrimCompleted(Event):
    event_type = "trim.completed"
    event_version = 2

    trim_id: str = _TRIM_ID
    video_id: str
    clip_key: str
    #: The real duration of the clip (shorter than asked when clipped at the end).
    duration_seconds: float
    attempt: int = Field(default=1, ge=1)
    #: Source packets of the span left out of the clip because they did not decode, as
    #: in `VideoProcessed`.
    dropped_packets: int = Field(default=0, ge=0)
    #: When the clip's first frame shows in the source (seconds; at or up to a frame
    #: before the start asked for); None from transcoders before smart cuts.
    actual_start_seconds: float | None = None
    #: "smart" (the source's groups of pictures copied, the edges re-encoded) or
    #: "reencode" (every frame), with why a smart cut was not possible.
    cut_method: Literal["smart", "reencode"] | None = None
    reencode_reason: str | None = None


class TrimFailed(Event):
    event_type = "trim.failed"
    event_version = 2

    trim_id: str = _TRIM_ID
    video_id: str
    failure_reason: str
    #: A `FailureCode`, as in `VideoFailed`.
    failure_code: str = FailureCode.INTERNAL_ERROR
    attempt: int = Field(default=1, ge=1)


class StorageObjectCreated(Event):
    """An object landed in the bucket (from the store's notifications; never published
    by Kino itself, so not in `EVENT_TYPES`)."""

    event_type = "storage.object_created"

    key: str
    size: int = Field(ge=0)


class JobProgressed(Event):
    """Progress of a long media job. Catalog moves a trim request from scheduled to
    processing on its `started` stage; other stages are for observers."""

    event_type = "job.progressed"

    job: Literal["video", "trim"]
    id: str
    stage: Literal["started", "working"]
    fraction: float = Field(ge=0, le=1)
    attempt: int = Field(default=1, ge=1)
    #: Seconds still to go at the pace so far (none yet at `started`).
    eta_seconds: float | None = Field(default=None, ge=0)


EVENT_TYPES: dict[str, type[Event]] = {
    model.event_type: model
    for model in (
        UserRegistered,
        VideoUploaded,
        VideoProcessed,
        VideoRenditionsAdded,
        VideoFailed,
        VideoDeleted,
        TrimRequested,
        TrimCompleted,
        TrimFailed,
        JobProgressed,
    )
}
