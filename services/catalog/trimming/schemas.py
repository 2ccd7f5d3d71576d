"""Request and response bodies of the trimming API (seed 004, JSON:API)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.catalog.trimming.repository import TrimJob

# -- the upload form -----------------------------------------------------------


#: Times past a week are refused: no video Kino accepts is that long (the transcoder's
#: limit is 4 h by default), and bounded numbers stay exact through every computation.
MAX_TIME_SECONDS = 7 * 24 * 3600.0
#: The shortest clip: a millisecond, shorter than a frame of any video (1000 fps). A
#: duration under one frame of the actual source fails at the transcoder (`span_too_short`).
MIN_DURATION_SECONDS = 0.001


def _number(value: object) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(number):
        raise ValueError("must be a number")
    if number > MAX_TIME_SECONDS:
        raise ValueError(f"must be less than or equal to {MAX_TIME_SECONDS:.0f}")
    return number


class TrimForm(BaseModel):
    """`POST /api/v1/users/videos` fields; times in seconds, decimals allowed."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    # The validators below give the seed's messages; `json_schema_extra` shows the same
    # bounds in the OpenAPI document.
    name: str = Field(json_schema_extra={"minLength": 1, "maxLength": 255})
    source_file: bool
    trimming_start_time: float = Field(
        json_schema_extra={"minimum": 0, "maximum": MAX_TIME_SECONDS}
    )
    duration: float = Field(
        json_schema_extra={"minimum": MIN_DURATION_SECONDS, "maximum": MAX_TIME_SECONDS}
    )

    @field_validator("name")
    @classmethod
    def _name_present(cls, value: str) -> str:
        if not value:
            raise ValueError("can't be blank")
        if len(value) > 255:
            raise ValueError("is too long (maximum is 255 characters)")
        return value

    @field_validator("source_file", mode="before")
    @classmethod
    def _file_present(cls, value: object) -> bool:
        if value is not True:
            raise ValueError("can't be blank")
        return True

    @field_validator("trimming_start_time", mode="before")
    @classmethod
    def _start(cls, value: object) -> float:
        start = _number(value)
        if start < 0:
            raise ValueError("must be greater than or equal to 0")
        return start

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        duration = _number(value)
        if duration <= 0:
            raise ValueError("must be greater than 0")
        if duration < MIN_DURATION_SECONDS:
            raise ValueError(f"must be at least {MIN_DURATION_SECONDS} seconds")
        return duration


# -- documents -----------------------------------------------------------------


class RelationshipMeta(BaseModel):
    included: bool = False


class Relationship(BaseModel):
    """A relationship the document names but does not include (as the seed shows)."""

    meta: RelationshipMeta = RelationshipMeta()


class VideoRelationships(BaseModel):
    user: Relationship = Relationship()
    request: Relationship = Relationship()


class RequestRelationships(BaseModel):
    user: Relationship = Relationship()
    video: Relationship = Relationship()


class UploadedVideoAttributes(BaseModel):
    name: str


class UploadedVideoResource(BaseModel):
    id: str
    type: Literal["videos"] = "videos"
    attributes: UploadedVideoAttributes
    relationships: VideoRelationships = VideoRelationships()


class ClipAttributes(BaseModel):
    #: `HH:MM:SS` of the real clip.
    duration: str
    #: A presigned, directly fetchable URL.
    url: str
    # additions to the seed: what was cut, in seconds
    requested_start: float
    requested_duration: float
    #: Where the clip's first frame shows in the source: the start asked for, or up to
    #: a frame before it (absent for clips cut before this was recorded).
    actual_start: float | None = None
    actual_duration: float
    #: `smart` (whole groups of pictures copied, the edges re-encoded) or `reencode`.
    cut_method: Literal["smart", "reencode"] | None = None
    #: Why the source could not be cut smartly, when `cut_method` is `reencode`.
    reencode_reason: str | None = None


class ClipResource(BaseModel):
    id: str
    type: Literal["videos"] = "videos"
    attributes: ClipAttributes
    relationships: VideoRelationships = VideoRelationships()


class RequestAttributes(BaseModel):
    status: str
    # additions to the seed's attributes
    #: Only on failed requests: why, for people, and a stable code (README lists them).
    failure_reason: str | None = None
    failure_code: str | None = None
    #: While processing (and 1 when done): the fraction done and the seconds to go.
    progress: float | None = None
    eta_seconds: float | None = None
    #: Only on done requests: source packets of the span that did not decode and were
    #: left out of the clip (the pictures around them concealed); 0 for a clean source.
    dropped_packets: int | None = None


class RequestResource(BaseModel):
    id: str
    type: Literal["requests"] = "requests"
    attributes: RequestAttributes
    relationships: RequestRelationships = RequestRelationships()

    @classmethod
    def of(cls, job: TrimJob) -> RequestResource:
        """The trim request as `GET /api/v1/users/requests` shows it."""
        return cls(
            id=job.trim_id,
            attributes=RequestAttributes(
                status=job.status.value,
                failure_reason=job.failure_reason,
                failure_code=job.failure_code,
                progress=job.progress,
                eta_seconds=job.eta_seconds,
                dropped_packets=job.dropped_packets,
            ),
        )


def hh_mm_ss(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
