"""The hosting domain: upload instructions, the processing state machine, listings,
watching and owner actions. Knows nothing of HTTP or AMQP.

States: pending → processing → processed | failed, and deleted (a tombstone kept
until its `video.deleted` event is out). Uploads complete outside Kino (the client
POSTs to storage); `upload_arrived` is reached both from the store's notifications
and from the reconciler's listing, and the guarded transition makes the second
arrival a no-op, so `video.uploaded` is published once per upload.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from services.catalog.errors import (
    InvalidUploadRequest,
    StillProcessing,
    UploadExpired,
    UploadGone,
    UploadIncomplete,
    UploadTooLarge,
    UserNotFound,
    VideoIsPrivate,
    VideoNotFailed,
    VideoNotFound,
)
from services.catalog.hosting.cursor import CursorCodec, PagePosition
from services.catalog.hosting.playlist_links import PlaylistLinks
from services.catalog.hosting.repository import (
    HashIdTaken,
    MultipartUpload,
    Video,
    VideoRepository,
    VideoStatus,
)
from services.catalog.job_slots import JobSlots, video_job
from services.catalog.media_jobs import STALLED_REASON, MediaJobLifecycle
from services.catalog.users import UserDirectory
from shared import hls
from shared.events import (
    Envelope,
    FailureCode,
    JobProgressed,
    Rendition,
    VideoDeleted,
    VideoFailed,
    VideoProcessed,
    VideoRenditionsAdded,
    VideoUploaded,
)
from shared.object_keys import rendition_file_name, upload_key, uploaded_video_id
from shared.outbox import OutboxRelay
from shared.storage import (
    ObjectMissing,
    Storage,
    StoredPart,
    UploadForm,
    is_storage_failure,
)

log = structlog.get_logger(__name__)

MAX_FILE_NAME_BYTES = 255
#: S3's limit on the parts of one multipart upload.
MAX_MULTIPART_PARTS = 10_000
MIB = 1024 * 1024
#: A ladder change read-modify-writes its video; a concurrent change makes it read again.
_LADDER_UPDATE_TRIES = 3
_FORBIDDEN_NAME_CHARACTERS = frozenset("/\\")


@dataclass(frozen=True)
class HostingPolicy:
    max_size_bytes: int
    valid_file_types: tuple[str, ...]
    upload_ttl: timedelta
    url_ttl: timedelta
    page_size: int
    #: Resumable uploads' part size, before `part_size_for` raises it for a large file.
    part_size: int
    #: Where clients reach the gateway: playlist links start with it (empty: where the
    #: request reached it).
    public_url: str

    def part_size_for(self, size: int) -> int:
        """The configured part size, or, for a file it would split in more parts than
        S3 allows, the next whole MiB that keeps it within."""
        needed = -(-size // MAX_MULTIPART_PARTS)
        return max(self.part_size, -(-needed // MIB) * MIB)


@dataclass(frozen=True)
class VideoPage:
    videos: list[Video]
    next_cursor: str | None


@dataclass(frozen=True)
class VideoUpdate:
    title: str | None = None
    description: str | None = None
    is_private: bool | None = None


def validate_file_name(file_name: str) -> str:
    """A display name only: it never becomes part of a storage key."""
    name = unicodedata.normalize("NFC", file_name.strip())
    if not name:
        raise InvalidUploadRequest("file_name must not be empty")
    if len(name.encode()) > MAX_FILE_NAME_BYTES:
        raise InvalidUploadRequest(f"file_name must be at most {MAX_FILE_NAME_BYTES} bytes")
    if any(c in _FORBIDDEN_NAME_CHARACTERS or unicodedata.category(c) == "Cc" for c in name):
        raise InvalidUploadRequest(
            "file_name must not contain path separators or control characters"
        )
    if name in {".", ".."}:
        raise InvalidUploadRequest("file_name is not a file name")
    return name


def _current_parts(
    multipart: MultipartUpload, listed: list[StoredPart], etags: Mapping[int, str] | None = None
) -> list[StoredPart]:
    """One part per number. Where storage lists a part sent twice (SeaweedFS does), the
    copy whose ETag the client named; else the one of the agreed size (the resend that
    fixed it), else the latest."""
    named = {number: _bare_etag(etag) for number, etag in (etags or {}).items()}

    def rank(part: StoredPart) -> tuple[bool, bool, datetime]:
        fits = part.number <= multipart.parts and part.size == multipart.part_bytes(part.number)
        return named.get(part.number) == _bare_etag(part.etag), fits, part.stored_at

    current: dict[int, StoredPart] = {}
    for part in listed:
        if part.number not in current or rank(part) >= rank(current[part.number]):
            current[part.number] = part
    for number, etag in named.items():
        if number in current and _bare_etag(current[number].etag) != etag:
            raise UploadIncomplete(f"Part {number} with ETag {etag} is not stored")
    return [current[number] for number in sorted(current)]


def _bare_etag(etag: str) -> str:
    """An ETag as S3 lists it and as clients quote it, compared alike."""
    return etag.strip().strip('"').lower()


def _check_parts(multipart: MultipartUpload, parts: list[StoredPart]) -> None:
    """Every part stored, each of the agreed size, so the file is exactly `size` bytes
    (within the upload limit, as the POST policy's size range ensures)."""
    stored = {part.number: part for part in parts}
    missing = [n for n in range(1, multipart.parts + 1) if n not in stored]
    if missing:
        listed = ", ".join(map(str, missing[:10])) + (", …" if len(missing) > 10 else "")
        raise UploadIncomplete(f"Parts not uploaded yet: {listed}")
    for number in range(1, multipart.parts + 1):
        expected = multipart.part_bytes(number)
        if stored[number].size != expected:
            raise UploadIncomplete(
                f"Part {number} is {stored[number].size} bytes; it must be {expected} bytes"
            )
    extra = sorted(n for n in stored if n > multipart.parts)
    if extra:
        raise UploadIncomplete(
            f"The file has {multipart.parts} parts; part {extra[0]} is not one of them"
        )


def new_hash_id() -> str:
    """Short, URL-safe, unguessable: 11 characters from 64 random bits."""
    return secrets.token_urlsafe(8)


class HostingService(MediaJobLifecycle[Video]):
    def __init__(
        self,
        videos: VideoRepository,
        users: UserDirectory,
        storage: Storage,
        outbox: OutboxRelay,
        cursors: CursorCodec,
        policy: HostingPolicy,
        slots: JobSlots,
        links: PlaylistLinks,
    ) -> None:
        super().__init__(videos, slots, outbox)
        self._videos = videos
        self._users = users
        self._storage = storage
        self._cursors = cursors
        self._links = links
        self.policy = policy

    # -- uploads ---------------------------------------------------------------

    async def request_upload(
        self, user_id: str, content_type: str, file_name: str
    ) -> tuple[Video, UploadForm]:
        video = await self._insert_pending(user_id, content_type, file_name, size=None)
        form = self._storage.upload_form(
            video.upload_key,
            content_type=content_type,
            max_bytes=self.policy.max_size_bytes,
            expires_at=video.upload_expires_at,
        )
        return video, form

    async def begin_multipart_upload(
        self, user_id: str, content_type: str, file_name: str, size: int
    ) -> tuple[Video, MultipartUpload]:
        """A resumable upload of a file of `size` bytes, sent in parts (S3 multipart)."""
        if size > self.policy.max_size_bytes:
            raise UploadTooLarge(self.policy.max_size_bytes)
        video = await self._insert_pending(user_id, content_type, file_name, size=size)
        return await self._pending_multipart(user_id, video.hash_id)

    async def multipart_upload(
        self, user_id: str, hash_id: str
    ) -> tuple[Video, MultipartUpload, list[StoredPart]]:
        """The owner's resumable upload still in progress, and the parts storage holds."""
        video, multipart = await self._pending_multipart(user_id, hash_id)
        try:
            listed = await self._storage.stored_parts(video.upload_key, multipart.upload_id)
        except ObjectMissing:
            raise UploadExpired from None  # aborted by the reconciler
        return video, multipart, _current_parts(multipart, listed)

    async def part_upload_url(self, user_id: str, hash_id: str, number: int) -> tuple[str, Video]:
        """A presigned PUT for part `number`, valid until the upload expires."""
        video, multipart = await self._pending_multipart(user_id, hash_id)
        if not 1 <= number <= multipart.parts:
            raise InvalidUploadRequest(f"part number must be from 1 to {multipart.parts}")
        valid_for = max(video.upload_expires_at - datetime.now(UTC), timedelta(seconds=1))
        url = self._storage.part_upload_url(
            video.upload_key, multipart.upload_id, number, valid_for
        )
        return url, video

    async def complete_multipart_upload(
        self,
        user_id: str,
        hash_id: str,
        etags: Mapping[int, str],
        *,
        correlation_id: str | None,
    ) -> Video:
        """Join the parts and start processing; `etags` name the copy of a part sent
        more than once. Completing again changes nothing."""
        video = await self._videos.get(hash_id)
        if (
            video is not None
            and video.user_id == user_id
            and video.multipart is not None
            and video.status is not VideoStatus.PENDING
        ):
            return video
        video, multipart = await self._pending_multipart(user_id, hash_id)
        try:
            listed = await self._storage.stored_parts(video.upload_key, multipart.upload_id)
            parts = _current_parts(multipart, listed, etags)
            _check_parts(multipart, parts)
            await self._storage.complete_multipart(video.upload_key, multipart.upload_id, parts)
        except ObjectMissing:
            pass  # completed concurrently: the object is there (else it was aborted)
        if not await self._storage.exists(video.upload_key):
            raise UploadExpired
        arrived = await self.upload_arrived(
            video.upload_key, multipart.size, datetime.now(UTC), correlation_id=correlation_id
        )
        return arrived or await self._videos.get(hash_id) or video

    async def abort_multipart_upload(self, user_id: str, hash_id: str) -> None:
        """Give the resumable upload up: its parts are dropped, the video is gone."""
        video, _ = await self._pending_multipart(user_id, hash_id, expired_too=True)
        if not await self._delete(video, from_status=VideoStatus.PENDING, correlation_id=None):
            raise VideoNotFound

    async def _pending_multipart(
        self, user_id: str, hash_id: str, *, expired_too: bool = False
    ) -> tuple[Video, MultipartUpload]:
        video = await self._videos.get(hash_id)
        if (
            video is None
            or video.user_id != user_id
            or video.multipart is None
            or video.status is not VideoStatus.PENDING
        ):
            raise VideoNotFound
        if not expired_too and video.upload_expires_at <= datetime.now(UTC):
            raise UploadExpired
        return video, video.multipart

    async def _insert_pending(
        self, user_id: str, content_type: str, file_name: str, *, size: int | None
    ) -> Video:
        """A new pending video; given a `size`, with a multipart upload begun for it."""
        if content_type not in self.policy.valid_file_types:
            raise InvalidUploadRequest(
                f"file_content_type must be one of: {', '.join(self.policy.valid_file_types)}"
            )
        name = validate_file_name(file_name)
        now = datetime.now(UTC)
        for _ in range(3):
            hash_id = new_hash_id()
            multipart = None
            if size is not None:
                upload_id = await self._storage.begin_multipart(upload_key(hash_id), content_type)
                multipart = MultipartUpload(upload_id, size, self.policy.part_size_for(size))
            video = Video(
                hash_id=hash_id,
                user_id=user_id,
                file_name=name,
                content_type=content_type,
                status=VideoStatus.PENDING,
                upload_key=upload_key(hash_id),
                upload_time=now,
                upload_expires_at=now + self.policy.upload_ttl,
                title=name,
                multipart=multipart,
            )
            try:
                await self._videos.insert(video)
                return video
            except HashIdTaken:
                if multipart is not None:
                    await self._storage.abort_multipart(video.upload_key, multipart.upload_id)
        raise RuntimeError("could not allocate a unique hash_id")

    async def upload_arrived(
        self, key: str, size: int, at: datetime, *, correlation_id: str | None = None
    ) -> Video | None:
        """The pending upload stored at `key` is complete: hand it to the transcoder.

        Returns the video when this call made the transition, `None` if it was already
        made (or the key belongs to no pending upload).
        """
        hash_id = uploaded_video_id(key)
        if hash_id is None:
            return None
        video = await self._videos.get(hash_id)
        if video is None or video.status is not VideoStatus.PENDING:
            return None
        moved = await self._videos.transition(
            hash_id,
            from_status=VideoStatus.PENDING,
            to_status=VideoStatus.PROCESSING,
            changes={
                "size_in_bytes": size,
                "upload_time": at,
                "held": True,
                "correlation_id": correlation_id,
            },
        )
        if moved is not None:
            log.info("upload arrived", video_id=hash_id, size=size)
            await self.dispatch(moved.user_id)
        return moved

    async def processed(self, event: VideoProcessed) -> None:
        done = await self._videos.transition(
            event.video_id,
            from_status=VideoStatus.PROCESSING,
            to_status=VideoStatus.PROCESSED,
            changes={
                "duration_seconds": event.duration_seconds,
                "size_in_bytes": event.size_in_bytes,
                "video_type": event.video_type,
                "playback_key": event.playback_key,
                "thumbnail_key": event.thumbnail_key,
                "dropped_packets": event.dropped_packets,
                "listing_time": datetime.now(UTC),
                "failure_reason": None,
                "failure_code": None,
                "progress": 1.0,
                "eta_seconds": 0.0,
                **_ladder_fields(event.renditions, event.ladder_pending, failure_reason=None),
                "ladder_version": 0,
            },
            attempt=event.attempt,
        )
        await self._job_ended(done)

    async def renditions_added(self, event: VideoRenditionsAdded) -> None:
        """More rungs of a listed video: added to its ladder (a repeated event adds
        nothing twice); the highest rung's file becomes the progressive download."""
        for _ in range(_LADDER_UPDATE_TRIES):
            video = await self._videos.get(event.video_id)
            if video is None or video.status is not VideoStatus.PROCESSED:
                return
            by_height = {r.height: r for r in video.renditions}
            by_height |= {r.height: r for r in event.renditions}
            pending = [height for height in event.ladder_pending if height not in by_height]
            changes = _ladder_fields(
                list(by_height.values()), pending, failure_reason=event.failure_reason
            )
            if pending:
                changes |= {"ladder_progress": video.ladder_progress}
            if event.dropped_packets:
                changes |= {"dropped_packets": event.dropped_packets}
            if await self._videos.update_ladder(video, event.attempt, changes):
                log.info("renditions added", video_id=video.hash_id, pending=pending)
                return

    async def progressed(self, event: JobProgressed) -> None:
        """Progress of processing, or, once listed, of the rungs still being made."""
        await super().progressed(event)
        await self._videos.record_ladder_progress(
            event.id, event.attempt, event.fraction, event.eta_seconds
        )

    async def failed(self, event: VideoFailed) -> None:
        failed = await self._videos.transition(
            event.video_id,
            from_status=VideoStatus.PROCESSING,
            to_status=VideoStatus.FAILED,
            changes={
                "failure_reason": event.failure_reason,
                "failure_code": event.failure_code,
                "failed_at": datetime.now(UTC),
                "eta_seconds": None,
            },
            attempt=event.attempt,
        )
        if failed is None:
            await self._ladder_given_up(event)
        await self._job_ended(failed)

    async def _ladder_given_up(self, event: VideoFailed) -> None:
        """A job given up after its video was listed: the rungs still to come will not
        be made (the video stays playable with those it has)."""
        video = await self._videos.get(event.video_id)
        if video is None or video.status is not VideoStatus.PROCESSED or not video.ladder_pending:
            return
        changes = _ladder_fields(list(video.renditions), [], failure_reason=event.failure_reason)
        await self._videos.update_ladder(video, event.attempt, changes)

    async def retry(self, user_id: str, hash_id: str, *, correlation_id: str | None) -> Video:
        """Process a failed upload again, from the file it kept (a new attempt)."""
        video = await self._videos.get(hash_id)
        if video is None or video.user_id != user_id:
            raise VideoNotFound
        if video.status is not VideoStatus.FAILED:
            raise VideoNotFailed(
                f"Only a failed video can be retried; this one is {video.status.value}"
            )
        if not await self._storage.exists(video.upload_key):
            raise UploadGone
        attempt = video.attempt + 1
        retried = await self._videos.transition(
            hash_id,
            from_status=VideoStatus.FAILED,
            to_status=VideoStatus.PROCESSING,
            changes={
                "attempt": attempt,
                "failure_reason": None,
                "failure_code": None,
                "failed_at": None,
                "progress": None,
                "eta_seconds": None,
                "progress_at": None,
                "stall_requeued": False,
                "held": True,
                "correlation_id": correlation_id,
            },
            owner=user_id,
        )
        if retried is None:  # retried (or deleted) concurrently
            raise VideoNotFailed("Only a failed video can be retried")
        await self.dispatch(user_id)
        return retried

    async def expire_pending(self, video: Video) -> bool:
        """Drop a pending upload whose instructions ran out (no file ever arrived)."""
        return await self._delete(video, from_status=VideoStatus.PENDING, correlation_id=None)

    # -- reading ---------------------------------------------------------------

    async def my_videos(self, user_id: str) -> list[Video]:
        return await self._videos.of_user(user_id)

    async def explore(
        self, caller: str | None, *, include_my: bool, cursor: str | None
    ) -> VideoPage:
        listing = "explore" if include_my or caller is None else f"explore-not:{caller}"
        return await self._page(listing, cursor, exclude_user=None if include_my else caller)

    async def user_videos(self, user_id: str, cursor: str | None) -> VideoPage:
        if not await self._users.exists(user_id):
            raise UserNotFound
        return await self._page(f"user:{user_id}", cursor, user_id=user_id)

    async def watch(self, caller: str | None, user_id: str, hash_id: str) -> Video:
        video = await self._videos.get(hash_id)
        if video is None or video.user_id != user_id or video.status is not VideoStatus.PROCESSED:
            raise VideoNotFound
        if video.is_private and caller != video.user_id:
            raise VideoIsPrivate
        return video

    def url_for(self, key: str | None) -> str | None:
        return self._storage.download_url(key, self.policy.url_ttl) if key else None

    def hls_url(self, video: Video, gateway_url: str) -> str | None:
        """The signed link to the video's master playlist (at `KINO_PUBLIC_URL`, else
        at `gateway_url`, where the client reached the gateway); None before ladders."""
        if not video.renditions:
            return None
        base = self.policy.public_url or gateway_url
        link = self._links.sign(video.hash_id, datetime.now(UTC) + self.policy.url_ttl)
        return f"{base}/video/hls/{video.hash_id}/master.m3u8?{link.query}"

    # -- playlists -------------------------------------------------------------

    async def master_playlist(
        self, hash_id: str, expires: str | None, signature: str | None
    ) -> str:
        """The master playlist of the rungs made so far, for a genuine, current link; its
        media playlists are named relatively, with the same link."""
        self._links.check(hash_id, expires, signature, datetime.now(UTC))
        video = await self._listed_with_ladder(hash_id)
        query = f"expires={expires}&signature={signature}"
        return hls.master_playlist(
            [
                hls.Variant(
                    uri=f"{r.height}p.m3u8?{query}",
                    bandwidth=r.bandwidth,
                    average_bandwidth=r.average_bandwidth,
                    width=r.width,
                    height=r.height,
                    codecs=r.codecs,
                )
                for r in video.renditions
            ]
        )

    async def media_playlist(
        self, hash_id: str, height: int, expires: str | None, signature: str | None
    ) -> str:
        """One rung's media playlist, its file named by a presigned URL that expires
        when the link does."""
        now = datetime.now(UTC)
        expiry = self._links.check(hash_id, expires, signature, now)
        video = await self._listed_with_ladder(hash_id)
        rendition = next((r for r in video.renditions if r.height == height), None)
        if rendition is None:
            raise VideoNotFound
        try:
            stored = (await self._storage.read(rendition.playlist_key)).decode()
        except ObjectMissing as exc:  # deleted meanwhile
            raise VideoNotFound from exc
        lifetime = timedelta(seconds=max(1.0, expiry - now.timestamp()))
        url = self._storage.download_url(rendition.key, lifetime)
        return hls.with_file_uri(stored, rendition_file_name(rendition.height), url)

    async def _listed_with_ladder(self, hash_id: str) -> Video:
        video = await self._videos.get(hash_id)
        if video is None or video.status is not VideoStatus.PROCESSED or not video.renditions:
            raise VideoNotFound
        return video

    # -- owner actions ---------------------------------------------------------

    async def update(self, user_id: str, hash_id: str, update: VideoUpdate) -> None:
        changes = {
            name: value
            for name, value in (
                ("title", update.title),
                ("description", update.description),
                ("is_private", update.is_private),
            )
            if value is not None
        }
        if changes:
            # The update's filter checks the owner: one round trip.
            found = await self._videos.update_fields(hash_id, user_id, changes)
        else:  # nothing to change, but another user's or an unknown video is still 404
            video = await self._videos.get(hash_id)
            found = video is not None and video.user_id == user_id
        if not found:
            raise VideoNotFound

    async def delete(self, user_id: str, hash_id: str, *, correlation_id: str | None) -> None:
        video = await self._videos.get(hash_id)
        if video is None or video.user_id != user_id:
            raise VideoNotFound
        if video.status is VideoStatus.PROCESSING:
            raise StillProcessing
        deletable = (VideoStatus.PENDING, VideoStatus.PROCESSED, VideoStatus.FAILED)
        if not await self._delete(video, from_status=deletable, correlation_id=correlation_id):
            # It changed state under us: either it started processing or it is gone.
            current = await self._videos.get(hash_id)
            if current is not None and current.status is VideoStatus.PROCESSING:
                raise StillProcessing
            raise VideoNotFound

    # -- helpers ---------------------------------------------------------------

    async def _delete(
        self,
        video: Video,
        *,
        from_status: VideoStatus | tuple[VideoStatus, ...],
        correlation_id: str | None,
    ) -> bool:
        event = Envelope.wrap(
            VideoDeleted(
                video_id=video.hash_id,
                object_keys=video.object_keys,
                object_prefixes=video.object_prefixes,
            ),
            correlation_id=correlation_id,
        )
        deleted = await self._videos.transition(
            video.hash_id,
            from_status=from_status,
            to_status=VideoStatus.DELETED,
            changes={"deleted_at": datetime.now(UTC)},
            events=[event],
            owner=video.user_id,
        )
        if deleted is None:
            return False
        await self._publish(video.hash_id)
        if video.multipart is not None and video.status is VideoStatus.PENDING:
            await self._drop_parts(video, video.multipart)
        return True

    async def _drop_parts(self, video: Video, multipart: MultipartUpload) -> None:
        """Abort a deleted video's multipart upload; if storage cannot be reached now,
        the reconciler aborts it once the upload's time is up."""
        try:
            await self._storage.abort_multipart(video.upload_key, multipart.upload_id)
        except Exception as exc:
            if not is_storage_failure(exc):
                raise
            log.warning("multipart upload left to the reconciler", video_id=video.hash_id)

    def _slot(self, job: Video) -> str:
        return video_job(job.hash_id)

    def _job_event(self, job: Video, correlation_id: str | None) -> Envelope:
        return Envelope.wrap(
            VideoUploaded(
                video_id=job.hash_id,
                user_id=job.user_id,
                object_key=job.upload_key,
                file_name=job.file_name,
                content_type=job.content_type,
                attempt=job.attempt,
            ),
            correlation_id=correlation_id,
        )

    async def _fail_stalled(self, job: Video, now: datetime) -> Video | None:
        return await self._videos.transition(
            job.hash_id,
            from_status=VideoStatus.PROCESSING,
            to_status=VideoStatus.FAILED,
            changes={
                "failure_reason": STALLED_REASON,
                "failure_code": FailureCode.STALLED,
                "failed_at": now,
                "eta_seconds": None,
            },
            attempt=job.attempt,
        )

    async def _page(
        self,
        listing: str,
        cursor: str | None,
        *,
        user_id: str | None = None,
        exclude_user: str | None = None,
    ) -> VideoPage:
        after = self._cursors.decode(cursor, listing) if cursor else None
        size = self.policy.page_size
        videos = await self._videos.listed_page(
            limit=size + 1, after=after, user_id=user_id, exclude_user=exclude_user
        )
        if len(videos) <= size:
            return VideoPage(videos, None)
        last = videos[size - 1]
        assert last.listing_time is not None
        position = PagePosition(last.listing_time, last.hash_id)
        return VideoPage(videos[:size], self._cursors.encode(position, listing))


def _ladder_fields(
    renditions: list[Rendition], pending: list[int], *, failure_reason: str | None
) -> dict[str, object]:
    """The stored ladder: rungs highest first, the highest one's file the progressive
    download (a video hosted before ladders keeps its playback file)."""
    rungs = sorted(renditions, key=lambda r: r.height, reverse=True)
    fields: dict[str, object] = {
        "renditions": [r.model_dump() for r in rungs],
        "ladder_pending": sorted(pending, reverse=True),
        "ladder_busy": bool(pending),
        "ladder_progress": 0.0 if pending else None,
        "ladder_eta_seconds": None,
        "ladder_failure_reason": failure_reason,
    }
    if rungs:
        fields |= {"playback_key": rungs[0].key, "size_in_bytes": rungs[0].size_in_bytes}
    return fields
