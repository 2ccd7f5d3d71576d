"""Reading the trimming upload: a multipart form whose `source_file` part goes to
storage as it arrives, so neither memory nor the service's disk ever holds the whole
file. Parts may come in any order; `shared.forms` reads them strictly.

A form that is not multipart (the seed's 401 examples are urlencoded) is read as
ordinary fields, so it yields the usual validation errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.catalog.trimming.service import ReceivedUpload, StoreFile
from shared.forms import read_form

FILE_FIELD = "source_file"


async def receive_upload(request: web.Request, store: StoreFile) -> ReceivedUpload:
    """Read the form; stream its one `source_file` part through `store`."""
    stored: list[int] = []

    async def store_file(chunks: AsyncIterator[bytes], content_type: str) -> None:
        stored.append(await store(chunks, content_type))

    fields = await read_form(request, {FILE_FIELD: store_file})
    return ReceivedUpload(fields, stored[0] if stored else None)
