"""The parts of the gateway's answers the CLI reads (see `GET /openapi.json`).

The CLI is a client of the public API only: these models mirror the documented
bodies instead of importing the services' own, and ignore fields they do not use, so
an addition to the API never breaks an installed CLI.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

A = TypeVar("A")
D = TypeVar("D")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- hosting (`/video/...`) ----------------------------------------------------


class UploadConfig(_Answer):
    max_size_in_bytes: int
    valid_file_types: list[str]


class UploadInstructions(_Answer):
    """A presigned POST policy: the form `fields` to send with the file to `url`."""

    url: str
    signatures: dict[str, str]

    @property
    def hash_id(self) -> str:
        """The video's id: the policy pins the object key `incoming/<hash_id>`."""
        return self.signatures["key"].rsplit("/", 1)[-1]


class UploadedPart(_Answer):
    part_number: int
    size: int
    #: S3's ETag of the part: the MD5 of its bytes (hex), on stores that do not encrypt.
    etag: str


class MultipartUpload(_Answer):
    """A resumable upload: `parts` parts of `part_size` bytes, the last one the rest."""

    hash_id: str
    part_size: int
    parts: int
    size: int
    uploaded_parts: list[UploadedPart] = []

    def part_range(self, number: int) -> tuple[int, int]:
        """Where part `number` (from 1) starts in the file, and its length."""
        start = (number - 1) * self.part_size
        return start, min(self.part_size, self.size - start)


class PartUrl(_Answer):
    url: str


class Video(_Answer):
    hash_id: str
    user_id: str
    title: str
    file_name: str
    is_private: bool
    duration_seconds: int | None = None
    size_in_bytes: int | None = None
    thumbnail_url: str | None = None
    listing_time: str | None = None


class UnprocessedVideo(_Answer):
    hash_id: str
    file_name: str
    #: `pending` (waiting for the file), `processing` or `failed`.
    status: str
    failure_reason: str | None = None
    progress: float | None = None
    eta_seconds: float | None = None


class MyVideos(_Answer):
    unprocessed_videos: list[UnprocessedVideo]
    videos: list[Video]


class VideosPage(_Answer):
    videos: list[Video]
    next: str | None = None


class WatchRecord(_Answer):
    watchable_url: str
    video: Video
    hls_url: str | None = None


# -- trimming and users (`/api/v1/users/...`, JSON:API) -----------------------------


class Resource(_Answer, Generic[A]):
    id: str
    attributes: A


class Document(_Answer, Generic[D]):
    data: D


class UserAttributes(_Answer):
    email: str


class TokenAttributes(_Answer):
    access: str


class UploadedVideoAttributes(_Answer):
    name: str


class RequestAttributes(_Answer):
    #: `scheduled`, `processing`, `done` or `failed`.
    status: str
    failure_reason: str | None = None
    progress: float | None = None
    eta_seconds: float | None = None


class ClipAttributes(_Answer):
    #: `HH:MM:SS` of the clip.
    duration: str
    #: A presigned download URL.
    url: str


TrimRequest = Resource[RequestAttributes]
Clip = Resource[ClipAttributes]
