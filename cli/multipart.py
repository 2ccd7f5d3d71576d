"""A `multipart/form-data` body streamed from a file, with its exact length.

httpx streams a file part too, but only learns the body's length from the file
object itself and reports no progress; building the body here keeps both in one
place: the `Content-Length` storage policies insist on, and a callback per chunk
sent, without ever holding the file in memory.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Bytes read from the file and handed to the connection at a time.
CHUNK_SIZE = 1024 * 1024

#: Told the number of bytes of the file just sent.
OnSent = Callable[[int], None]


def _quoted(value: str) -> str:
    """A header parameter as browsers send it: `"`, CR and LF percent-encoded."""
    escaped = value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    return f'"{escaped}"'


@dataclass(frozen=True)
class MultipartBody:
    """The form `fields` in order, then the file at `path` as the part `file_field`.

    The file part comes last because a presigned S3 POST ignores every field after
    the file, and the trimming API reads the fields it needs wherever they are.
    """

    fields: Mapping[str, str]
    file_field: str
    path: Path
    content_type: str
    #: The file's size when the body was made; exactly that many bytes are sent.
    size: int
    boundary: str = field(default_factory=lambda: secrets.token_hex(16))

    @classmethod
    def of_file(
        cls, fields: Mapping[str, str], file_field: str, path: Path, content_type: str
    ) -> MultipartBody:
        return cls(fields, file_field, path, content_type, path.stat().st_size)

    def _head(self) -> bytes:
        parts = [
            f"--{self.boundary}\r\nContent-Disposition: form-data; name={_quoted(name)}"
            f"\r\n\r\n{value}\r\n"
            for name, value in self.fields.items()
        ]
        parts.append(
            f"--{self.boundary}\r\nContent-Disposition: form-data; "
            f"name={_quoted(self.file_field)}; filename={_quoted(self.path.name)}\r\n"
            f"Content-Type: {self.content_type}\r\n\r\n"
        )
        return "".join(parts).encode()

    def _tail(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def headers(self) -> dict[str, str]:
        length = len(self._head()) + self.size + len(self._tail())
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(length),
        }

    def chunks(self, on_sent: OnSent) -> Iterator[bytes]:
        """The body, read from the file as the connection takes it."""
        yield self._head()
        remaining = self.size
        with self.path.open("rb") as file:
            while remaining > 0:
                chunk = file.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    break  # the file shrank: the connection reports the short body
                remaining -= len(chunk)
                yield chunk
                on_sent(len(chunk))
        yield self._tail()
