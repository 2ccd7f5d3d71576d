"""Request and response bodies of the hosting API (seed 000, FastAPI style)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_serializer

from services.catalog.hosting.repository import MultipartUpload, Video, VideoStatus


def _iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as every hosting timestamp."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Timestamps(BaseModel):
    @field_serializer("upload_time", "listing_time", check_fields=False)
    def _serialize_time(self, moment: datetime | None) -> str | None:
        return _iso_utc(moment)


# -- queries and bodies --------------------------------------------------------


class UploadQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file_content_type: str
    file_name: str


class ExploreQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    next: str | None = None
    include_my: bool = False


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    next: str | None = None


class WatchQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: str = Field(min_length=1)
    hash_id: str = Field(min_length=1)


class PlaylistLinkQuery(BaseModel):
    """The signature of an HLS playlist link (`hls_url` and the links it leads to);
    missing or wrong is a 403, checked by the service."""

    model_config = ConfigDict(extra="ignore")

    expires: str | None = None
    signature: str | None = None


class MultipartUploadBody(BaseModel):
    """A resumable upload: the file's name, type and exact size (limits as for the POST
    policy)."""

    model_config = ConfigDict(extra="ignore")

    file_name: str
    file_content_type: str
    size: int = Field(ge=1)


class CompletedPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    part_number: int = Field(ge=1)
    #: The `ETag` storage answered the part's PUT with.
    etag: str = Field(min_length=1, max_length=200)


class MultipartCompleteBody(BaseModel):
    """Optional: the ETags storage gave the parts' PUTs. A part sent more than once is
    then the copy named here (SeaweedFS keeps every copy until completion); a part not
    named is the copy of the agreed size, else the latest."""

    model_config = ConfigDict(extra="ignore")

    parts: list[CompletedPart] = Field(default=[], max_length=10_000)


class PartNumberPath(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hash_id: str
    part_number: int = Field(ge=1)


class VideoUpdateBody(BaseModel):
    """PUT body: only these three fields change; any other field sent is ignored."""

    model_config = ConfigDict(extra="ignore")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    is_private: StrictBool | None = None


# -- responses -----------------------------------------------------------------


class VideoUploadConfigRecord(BaseModel):
    max_size_in_bytes: int
    valid_file_types: list[str]


class FileUploadSignedInstructions(BaseModel):
    url: str
    signatures: dict[str, str]


class _ExpiresAt(BaseModel):
    @field_serializer("expires_at", check_fields=False)
    def _serialize_expiry(self, moment: datetime) -> str | None:
        return _iso_utc(moment)


class MultipartUploadRecord(_ExpiresAt):
    """A resumable upload begun: send `parts` parts of `part_size` bytes (the last one
    the rest) to the URLs of `/video/upload/multipart/{hash_id}/parts/{n}`, then
    complete it, all before `expires_at`."""

    hash_id: str
    upload_id: str
    part_size: int
    parts: int
    size: int
    expires_at: datetime

    @classmethod
    def of(cls, video: Video, multipart: MultipartUpload) -> MultipartUploadRecord:
        return cls(
            hash_id=video.hash_id,
            upload_id=multipart.upload_id,
            part_size=multipart.part_size,
            parts=multipart.parts,
            size=multipart.size,
            expires_at=video.upload_expires_at,
        )


class UploadedPart(BaseModel):
    part_number: int
    size: int
    etag: str


class MultipartUploadState(MultipartUploadRecord):
    """A resumable upload in progress: the parts storage holds (to resume, send the
    others)."""

    uploaded_parts: list[UploadedPart]


class PartUploadUrl(_ExpiresAt):
    """Where to PUT one part: the part's bytes as the body, nothing else needed."""

    part_number: int
    url: str
    expires_at: datetime


class VideoPublic(_Timestamps):
    hash_id: str
    user_id: str
    file_name: str
    upload_time: datetime
    title: str
    description: str
    size_in_bytes: int | None
    duration_seconds: int | None
    video_type: str | None
    thumbnail_url: str | None
    is_private: bool
    listing_time: datetime | None
    # additions to the seed
    #: Only in the owner's `/video/my/`: source packets that did not decode and were left
    #: out of the playback file (the pictures around them concealed); 0 for a clean source.
    dropped_packets: int | None = None

    @classmethod
    def of(cls, video: Video, thumbnail_url: str | None, *, for_owner: bool = False) -> VideoPublic:
        return cls(
            hash_id=video.hash_id,
            user_id=video.user_id,
            file_name=video.file_name,
            upload_time=video.upload_time,
            title=video.title,
            description=video.description,
            size_in_bytes=video.size_in_bytes,
            duration_seconds=(
                round(video.duration_seconds) if video.duration_seconds is not None else None
            ),
            video_type=video.video_type,
            thumbnail_url=thumbnail_url,
            is_private=video.is_private,
            listing_time=video.listing_time,
            dropped_packets=video.dropped_packets if for_owner else None,
        )


class UnprocessedVideo(_Timestamps):
    hash_id: str
    user_id: str
    file_name: str
    upload_time: datetime
    failure_reason: str | None = None
    # additions to the seed
    #: `pending` (waiting for the file), `processing` or `failed`.
    status: str
    #: A stable machine code of the failure (README lists them).
    failure_code: str | None = None
    #: While processing: the fraction done (0 to 1) and the seconds still to go.
    progress: float | None = None
    eta_seconds: float | None = None

    @classmethod
    def of(cls, video: Video) -> UnprocessedVideo:
        processing = video.status is VideoStatus.PROCESSING
        return cls(
            hash_id=video.hash_id,
            user_id=video.user_id,
            file_name=video.file_name,
            upload_time=video.upload_time,
            failure_reason=video.failure_reason,
            status=video.status.value,
            failure_code=video.failure_code,
            progress=video.progress if processing else None,
            eta_seconds=video.eta_seconds if processing else None,
        )


class UserVideosList(BaseModel):
    unprocessed_videos: list[UnprocessedVideo]
    videos: list[VideoPublic]


class VideosPage(BaseModel):
    videos: list[VideoPublic]
    next: str | None = None


class RungPublic(BaseModel):
    height: int
    width: int
    #: Peak bits per second, as the master playlist's `BANDWIDTH`.
    bandwidth: int
    #: Its file, a progressive MP4 too (presigned, expiring with `watchable_url`).
    url: str


class LadderPublic(BaseModel):
    """The adaptive ladder: rungs made (in `hls_url`), rungs still to come."""

    renditions: list[RungPublic]
    pending: list[int]
    #: While rungs are still to come: the fraction done and the seconds to go.
    progress: float | None = None
    eta_seconds: float | None = None
    #: Why the rungs still to come will not be made (the video stays playable).
    failure_reason: str | None = None


class WatchVideoRecord(BaseModel):
    watchable_url: str
    video: VideoPublic
    # additions to the seed
    #: The HLS master playlist of the rungs made so far: a signed link, expiring with
    #: `watchable_url`. None for a video hosted before ladders (one playback file).
    hls_url: str | None = None
    ladder: LadderPublic | None = None
