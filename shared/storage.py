"""S3-compatible object storage through the `minio` SDK.

The SDK is synchronous; every call runs in a worker thread so the event loop
keeps serving. One bucket holds every object, under a prefix per kind
(`shared.object_keys` names them and builds every key).

Presigned URLs are handed to clients, so they are signed for the endpoint
clients reach (`KINO_S3_PUBLIC_ENDPOINT`), which may differ from the one the
services use. Signing is an offline computation: the region is configured, so
the SDK never asks the store for it.

Clients' resumable uploads are S3 multipart uploads driven by Kino: it creates,
lists, completes and aborts them, and presigns a PUT per part. The SDK exposes those
S3 calls only as underscore methods of `Minio` (its own `put_object` uses them); they
are wrapped here, in one place, so an SDK change shows in one file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.datatypes import Part, PostPolicy
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from shared.config import StorageSettings


class ObjectMissing(Exception):
    """The object does not exist (or no longer does)."""


def is_storage_failure(exc: BaseException) -> bool:
    """An error of the store or of the way to it (the SDK's errors, HTTP and network)."""
    return isinstance(exc, (MinioException, urllib3.exceptions.HTTPError, ConnectionError))


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class StoredPart:
    """A part of a multipart upload that storage holds."""

    number: int
    size: int
    etag: str
    stored_at: datetime


@dataclass(frozen=True)
class OpenMultipartUpload:
    """A multipart upload begun and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class UploadForm:
    """Where and how a client POSTs a file straight to storage."""

    url: str
    fields: dict[str, str]


def _client(endpoint: str, settings: StorageSettings, http: urllib3.PoolManager) -> Minio:
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"storage endpoint must be an http(s) URL, got {endpoint!r}")
    return Minio(
        parts.netloc,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=parts.scheme == "https",
        region=settings.s3_region,
        http_client=http,
    )


class Storage:
    """The service's view of the media bucket."""

    def __init__(self, settings: StorageSettings) -> None:
        self.bucket = settings.s3_bucket
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)
            ),
            maxsize=16,
        )
        self._client = _client(settings.s3_endpoint, settings, self._http)
        self._public_endpoint = (settings.s3_public_endpoint or settings.s3_endpoint).rstrip("/")
        self._signer = _client(self._public_endpoint, settings, self._http)

    def close(self) -> None:
        self._http.clear()

    async def ensure_bucket(self) -> None:
        def create() -> None:
            if not self._client.bucket_exists(self.bucket):
                with contextlib.suppress(S3Error):
                    self._client.make_bucket(self.bucket)
                # Another replica may have won the race; what matters is that it exists.
                if not self._client.bucket_exists(self.bucket):
                    raise RuntimeError(f"bucket {self.bucket!r} could not be created")

        await asyncio.to_thread(create)

    async def ping(self) -> bool:
        try:
            return await asyncio.to_thread(self._client.bucket_exists, self.bucket)
        except Exception:
            return False

    # -- presigning (no I/O) ---------------------------------------------------

    def upload_form(
        self, key: str, *, content_type: str, max_bytes: int, expires_at: datetime
    ) -> UploadForm:
        """A POST policy pinning the key, the content type and the size range."""
        policy = PostPolicy(self.bucket, expires_at)
        policy.add_equals_condition("key", key)
        policy.add_equals_condition("Content-Type", content_type)
        policy.add_content_length_range_condition(1, max_bytes)
        fields = self._signer.presigned_post_policy(policy)
        return UploadForm(
            url=f"{self._public_endpoint}/{self.bucket}",
            fields={"key": key, "Content-Type": content_type, **fields},
        )

    def download_url(self, key: str, expires: timedelta) -> str:
        """A presigned GET (HTTP Range works on it) valid for `expires`."""
        return self._signer.presigned_get_object(self.bucket, key, expires=expires)

    def part_upload_url(self, key: str, upload_id: str, number: int, expires: timedelta) -> str:
        """A presigned PUT of part `number` of a multipart upload, valid for `expires`."""
        return self._signer.get_presigned_url(
            "PUT",
            self.bucket,
            key,
            expires=expires,
            extra_query_params={"partNumber": str(number), "uploadId": upload_id},
        )

    # -- multipart uploads -----------------------------------------------------

    async def begin_multipart(self, key: str, content_type: str) -> str:
        """Begin a multipart upload of `key`; returns its upload id."""
        return await asyncio.to_thread(
            self._client._create_multipart_upload,
            self.bucket,
            key,
            {"Content-Type": content_type},
        )

    async def stored_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        """The parts stored so far, by number. A part sent again replaces the earlier
        one, but SeaweedFS lists both (in no set order) until the upload completes.
        `ObjectMissing` if the upload is gone (completed or aborted)."""

        def run() -> list[StoredPart]:
            parts: list[StoredPart] = []
            marker: str | None = None
            while True:
                page = self._client._list_parts(
                    self.bucket, key, upload_id, part_number_marker=marker
                )
                parts += [
                    StoredPart(
                        p.part_number,
                        p.size or 0,
                        p.etag,
                        p.last_modified or datetime.now(UTC),
                    )
                    for p in page.parts
                ]
                if not page.is_truncated or not page.next_part_number_marker:
                    return parts
                marker = page.next_part_number_marker

        try:
            return await asyncio.to_thread(run)
        except S3Error as exc:
            if exc.code == "NoSuchUpload":
                raise ObjectMissing(key) from exc
            raise

    async def complete_multipart(self, key: str, upload_id: str, parts: list[StoredPart]) -> None:
        """Join the parts into the object `key`."""
        listed = [Part(part.number, part.etag) for part in parts]
        try:
            await asyncio.to_thread(
                self._client._complete_multipart_upload, self.bucket, key, upload_id, listed
            )
        except S3Error as exc:
            if exc.code == "NoSuchUpload":
                raise ObjectMissing(key) from exc
            raise

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort the upload and drop its parts; one already gone is not an error."""
        try:
            await asyncio.to_thread(
                self._client._abort_multipart_upload, self.bucket, key, upload_id
            )
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise

    async def open_multipart_uploads(self, prefix: str) -> list[OpenMultipartUpload]:
        def run() -> list[OpenMultipartUpload]:
            found: list[OpenMultipartUpload] = []
            key_marker: str | None = None
            upload_marker: str | None = None
            while True:
                page = self._client._list_multipart_uploads(
                    self.bucket,
                    prefix=prefix,
                    key_marker=key_marker,
                    upload_id_marker=upload_marker,
                )
                found += [
                    OpenMultipartUpload(
                        upload.object_name,
                        upload.upload_id or "",
                        upload.initiated_time or datetime.now(UTC),
                    )
                    for upload in page.uploads
                ]
                if not page.is_truncated:
                    return found
                key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker

        return await asyncio.to_thread(run)

    # -- objects ---------------------------------------------------------------

    async def list(self, prefix: str) -> list[StoredObject]:
        def run() -> list[StoredObject]:
            return [
                StoredObject(
                    key=str(item.object_name),
                    size=int(item.size or 0),
                    last_modified=item.last_modified or datetime.now(UTC),
                )
                for item in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)
            ]

        return await asyncio.to_thread(run)

    async def download(self, key: str, destination: Path) -> None:
        try:
            await asyncio.to_thread(self._client.fget_object, self.bucket, key, str(destination))
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                raise ObjectMissing(key) from exc
            raise

    async def read(self, key: str) -> bytes:
        """A small object's bytes (a playlist), read whole into memory."""

        def run() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        try:
            return await asyncio.to_thread(run)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                raise ObjectMissing(key) from exc
            raise

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self._client.stat_object, self.bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                return False
            raise
        return True

    async def upload(self, source: Path, key: str, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.fput_object, self.bucket, key, str(source), content_type=content_type
        )

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str,
        part_size: int = 8 * 1024 * 1024,
    ) -> int:
        """Store an async byte stream of unknown length as a multipart upload.

        Memory stays bounded by about two parts plus a few chunks, whatever the size:
        the SDK reads parts from a bridge fed by this coroutine, and this coroutine
        waits whenever the bridge is full. If `chunks` raises (a client that went
        away), the SDK aborts the multipart upload, so no object appears, and the
        error propagates. Returns the number of bytes stored.
        """
        loop = asyncio.get_running_loop()
        bridge = _ChunkBridge(loop)
        upload = asyncio.ensure_future(
            asyncio.to_thread(
                self._client.put_object,
                self.bucket,
                key,
                cast(BinaryIO, bridge),  # the SDK only calls read(size)
                length=-1,
                part_size=part_size,
                content_type=content_type,
                num_parallel_uploads=2,
            )
        )
        try:
            async for chunk in chunks:
                await bridge.put(chunk, upload)
        except BaseException as exc:
            await bridge.fail(exc)
            with contextlib.suppress(BaseException):
                await upload
            raise
        await bridge.close(upload)
        await upload
        return bridge.total

    async def remove(self, keys: Iterable[str]) -> None:
        """Remove objects; keys that do not exist are not an error (idempotent)."""
        targets = [DeleteObject(key) for key in keys]
        if not targets:
            return

        def run() -> None:
            errors = list(self._client.remove_objects(self.bucket, targets))
            failed = [e for e in errors if e.code not in {"NoSuchKey", "NoSuchObject"}]
            if failed:
                raise RuntimeError(f"could not remove {[e.name for e in failed]}")

        await asyncio.to_thread(run)

    async def remove_prefix(self, prefix: str) -> None:
        """Remove every object whose key starts with `prefix` (idempotent)."""
        await self.remove([stored.key for stored in await self.list(prefix)])


@contextlib.asynccontextmanager
async def open_storage(settings: StorageSettings) -> AsyncIterator[Storage]:
    storage = Storage(settings)
    await storage.ensure_bucket()
    try:
        yield storage
    finally:
        storage.close()


class _StreamAborted(Exception):
    """Raised inside the SDK's reader when the producing stream failed."""


class _ChunkBridge:
    """A file-like object the SDK reads in a worker thread, fed from the event loop.

    Bounded: at most `_MAX_QUEUED` chunks wait, so a fast producer waits for storage.
    """

    _MAX_QUEUED = 8

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(self._MAX_QUEUED)
        self._buffer = bytearray()
        self._finished = False
        self.total = 0

    async def put(self, chunk: bytes, upload: asyncio.Future[Any]) -> None:
        if chunk:
            self.total += len(chunk)
            await self._put_unless_done(chunk, upload)

    async def close(self, upload: asyncio.Future[Any]) -> None:
        await self._put_unless_done(None, upload)

    async def fail(self, exc: BaseException) -> None:
        # Never blocks: drop what is queued, the reader only needs to see the failure.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_StreamAborted(str(exc) or type(exc).__name__))

    async def _put_unless_done(self, item: bytes | None, upload: asyncio.Future[Any]) -> None:
        """Queue `item`, unless the upload ended first (then its error surfaces)."""
        put: asyncio.Future[Any] = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({put, upload}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            await upload  # raises the storage error
            raise RuntimeError("storage finished reading before the stream ended")

    # -- called by the SDK in its thread --------------------------------------

    def read(self, size: int = -1) -> bytes:
        while not self._finished and (size < 0 or len(self._buffer) < size):
            item = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop).result()
            if item is None:
                self._finished = True
            elif isinstance(item, BaseException):
                raise item
            else:
                self._buffer += item
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data
