"""Reading the trimming upload: a multipart form whose file part goes to storage as
it arrives, so neither memory nor the service's disk ever holds the whole file.

Parts may come in any order; text fields are small and read whole (bounded).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, MultipartReader, web

from services.catalog.errors import MalformedUpload
from services.catalog.trimming.service import ReceivedUpload, StoreFile

FILE_FIELD = "source_file"
_TEXT_FIELD_LIMIT = 4096
_CHUNK_BYTES = 256 * 1024


async def receive_upload(request: web.Request, store: StoreFile) -> ReceivedUpload:
    """Read the form; stream its one `source_file` part through `store`.

    A form that is not multipart (the seed's 401 examples are urlencoded) is read
    as ordinary fields, so it yields the usual validation errors.
    """
    if not request.content_type.startswith("multipart/"):
        form = await request.post()
        return ReceivedUpload({k: v for k, v in form.items() if isinstance(v, str)}, None)
    fields: dict[str, str] = {}
    file_size: int | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, MultipartReader):
            raise MalformedUpload("Nested multipart bodies are not supported")
        name = part.name or ""
        if name == FILE_FIELD and part.filename is not None:
            if file_size is not None:
                raise MalformedUpload("Send exactly one source_file")
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            file_size = await store(_chunks(part), content_type)
        else:
            fields[name] = await _text(part)
    return ReceivedUpload(fields, file_size)


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(_CHUNK_BYTES):
        yield chunk


async def _text(part: BodyPartReader) -> str:
    raw = bytearray()
    while chunk := await part.read_chunk(_TEXT_FIELD_LIMIT):
        raw += chunk
        if len(raw) > _TEXT_FIELD_LIMIT:
            raise MalformedUpload(f"Field {part.name!r} is too long")
    try:
        return raw.decode(part.get_charset("utf-8"))
    except (UnicodeDecodeError, LookupError) as exc:
        raise MalformedUpload(f"Field {part.name!r} is not text") from exc
