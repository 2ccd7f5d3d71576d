"""Reading the trimming upload: a multipart form whose file part goes to storage as
it arrives, so neither memory nor the service's disk ever holds the whole file.

Parts may come in any order; text fields are small and read whole (bounded).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, MultipartReader, web

from services.catalog.errors import MalformedUpload, UploadTooLarge

FILE_FIELD = "source_file"
_TEXT_FIELD_LIMIT = 4096
_CHUNK_BYTES = 256 * 1024

#: Stores the file's byte stream with its content type; returns the bytes stored.
StoreFile = Callable[[AsyncIterator[bytes], str], Awaitable[int]]


@dataclass
class ReceivedUpload:
    fields: dict[str, str] = field(default_factory=dict)
    #: Bytes stored from the file part; None when the form had no file part.
    file_size: int | None = None


async def receive_upload(request: web.Request, store: StoreFile, max_bytes: int) -> ReceivedUpload:
    """Read the form; stream its one `source_file` part through `store`.

    A form that is not multipart (the seed's 401 examples are urlencoded) is read
    as ordinary fields, so it yields the usual validation errors.
    """
    received = ReceivedUpload()
    if not request.content_type.startswith("multipart/"):
        form = await request.post()
        received.fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return received
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, MultipartReader):
            raise MalformedUpload("Nested multipart bodies are not supported")
        name = part.name or ""
        if name == FILE_FIELD and part.filename is not None:
            if received.file_size is not None:
                raise MalformedUpload("Send exactly one source_file")
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            received.file_size = await store(_limited(part, max_bytes), content_type)
        else:
            received.fields[name] = await _text(part)
    return received


async def _limited(part: BodyPartReader, max_bytes: int) -> AsyncIterator[bytes]:
    size = 0
    while chunk := await part.read_chunk(_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise UploadTooLarge(max_bytes)
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
