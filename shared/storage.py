"""S3-compatible object storage through the `minio` SDK.

The SDK is synchronous; every call runs in a worker thread so the event loop
keeps serving. One bucket holds every object, under a prefix per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import urllib3
from minio import Minio

from shared.config import StorageSettings


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

    def close(self) -> None:
        self._http.clear()

    async def ensure_bucket(self) -> None:
        def create() -> None:
            if not self._client.bucket_exists(self.bucket):
                with contextlib.suppress(Exception):
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


@contextlib.asynccontextmanager
async def open_storage(settings: StorageSettings) -> AsyncIterator[Storage]:
    storage = Storage(settings)
    await storage.ensure_bucket()
    try:
        yield storage
    finally:
        storage.close()
