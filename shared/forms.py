"""Form bodies read strictly, the same way by every endpoint that takes a form.

A form is `application/x-www-form-urlencoded` or `multipart/form-data`. What a careless
or hostile client can send instead is refused with `MalformedBody` (a 400 in the
surface's style), never a 500: a multipart body without a boundary or with broken
framing, a field name or value that is not UTF-8, a field sent twice, a text field
over `MAX_TEXT_FIELD_BYTES`, nested multipart bodies, or a file in a field that takes
none. A file part goes to the sink named for its field as it arrives, never held whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

#: The longest text field accepted (names, times, emails, passwords).
MAX_TEXT_FIELD_BYTES = 4096
_CHUNK_BYTES = 256 * 1024
_URLENCODED = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_OCTETS = "application/octet-stream"

#: Stores a file part's byte stream, given its content type.
FileSink = Callable[[AsyncIterator[bytes], str], Awaitable[object]]


class MalformedBody(Exception):
    """The body is not a form (or JSON document) the endpoint can read; the message
    says why."""


async def read_form(
    request: web.Request, files: Mapping[str, FileSink] | None = None
) -> dict[str, str]:
    """The form's text fields; each file part named in `files` is streamed to its sink.

    A body that is neither form type reads as no fields (the endpoint's validation
    then says what is missing).
    """
    if request.content_type == _MULTIPART:
        return await _multipart_fields(request, files or {})
    if request.content_type in {_URLENCODED, ""}:
        return _urlencoded_fields(await request.read())
    return {}


def _urlencoded_fields(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedBody("The form is not UTF-8 text") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        _add(fields, name, value)
    return fields


async def _multipart_fields(request: web.Request, files: Mapping[str, FileSink]) -> dict[str, str]:
    try:
        reader = await request.multipart()
    except ValueError as exc:  # no boundary in the Content-Type
        raise MalformedBody("A multipart form needs a boundary in its Content-Type") from exc
    fields: dict[str, str] = {}
    streamed: set[str] = set()
    while (part := await _next_part(reader)) is not None:
        name = _field_name(part)
        sink = files.get(name)
        if part.filename is not None and sink is None:
            raise MalformedBody(f"Field {name!r} does not take a file")
        if sink is not None and part.filename is not None:
            if name in streamed:
                raise MalformedBody(f"Send exactly one {name}")
            streamed.add(name)
            await sink(_file_chunks(part), part.headers.get("Content-Type", _OCTETS))
        else:
            _add(fields, name, await _text(part, name))
    return fields


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except (ValueError, HttpProcessingError) as exc:
        raise MalformedBody("The multipart form is malformed") from exc
    if isinstance(part, MultipartReader):
        raise MalformedBody("Nested multipart bodies are not supported")
    return part


def _field_name(part: BodyPartReader) -> str:
    name = part.name
    if not name:
        raise MalformedBody("Every part of the form needs a name")
    _require_utf8(name, "A field name is not UTF-8 text")
    return name


def _require_utf8(text: str, message: str) -> None:
    """aiohttp keeps undecodable bytes as lone surrogates, which JSON cannot carry."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise MalformedBody(message) from exc


def _add(fields: dict[str, str], name: str, value: str) -> None:
    if name in fields:
        raise MalformedBody(f"Field {name!r} is sent more than once")
    fields[name] = value


async def _file_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await _read_chunk(part, _CHUNK_BYTES):
        yield chunk


async def _text(part: BodyPartReader, name: str) -> str:
    raw = bytearray()
    while chunk := await _read_chunk(part, MAX_TEXT_FIELD_BYTES):
        raw += chunk
        if len(raw) > MAX_TEXT_FIELD_BYTES:
            raise MalformedBody(f"Field {name!r} is longer than {MAX_TEXT_FIELD_BYTES} bytes")
    try:
        return raw.decode(part.get_charset("utf-8"))
    except (UnicodeDecodeError, LookupError) as exc:
        raise MalformedBody(f"Field {name!r} is not text") from exc


async def _read_chunk(part: BodyPartReader, size: int) -> bytes:
    try:
        return await part.read_chunk(size)
    except (ValueError, HttpProcessingError) as exc:  # the body ends before its boundary
        raise MalformedBody("The multipart form is malformed") from exc
