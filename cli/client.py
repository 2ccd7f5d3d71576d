"""`KinoClient`: one method per call of Kino's public API, through the gateway.

Every failure (the gateway or storage unreachable, a refused token, an error answer,
an answer that is not what the API documents) is raised as a `KinoError` whose message
is one readable line; nothing else escapes a method but `OSError` from local files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from cli.errors import NOT_SIGNED_IN, KinoError
from cli.events import ServerEvent, server_events
from cli.multipart import CHUNK_SIZE, MultipartBody, OnSent
from cli.schemas import (
    Clip,
    Document,
    MultipartUpload,
    MyVideos,
    PartUrl,
    Resource,
    TokenAttributes,
    TrimRequest,
    UploadConfig,
    UploadedVideoAttributes,
    UploadInstructions,
    UserAttributes,
    VideosPage,
    WatchRecord,
)

M = TypeVar("M", bound=BaseModel)

#: Seconds to wait for a connection, and for each read or write on it.
CONNECT_TIMEOUT = 5.0
IO_TIMEOUT = 60.0


class Auth(Enum):
    """What a call does with the saved token."""

    NONE = "none"  # never sent (sign-in, registration)
    OPTIONAL = "optional"  # sent when there is one (explore, watch)
    REQUIRED = "required"  # without one the call is not even sent


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[: limit - 1]}…"


def _error_detail(response: httpx.Response) -> str:
    """The reason an error answer gives, whatever its style.

    Hosting: `{"detail": "..."}` or FastAPI's list of `{loc, msg}`; trimming and
    users: JSON:API `errors[].detail`; storage: S3's XML `<Message>`.
    """
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):
            return "; ".join(
                f"{'.'.join(str(part) for part in item.get('loc', [])[1:])}: {item.get('msg')}"
                for item in detail
                if isinstance(item, dict)
            )
        errors = body.get("errors")
        if isinstance(errors, list):
            return "; ".join(
                str(error.get("detail")) for error in errors if isinstance(error, dict)
            )
    if message := re.search(r"<Message>(.*?)</Message>", response.text, re.S):
        return message[1]
    return response.text or response.reason_phrase


def _check_storage(response: httpx.Response, what: str) -> None:
    if response.is_error:
        detail = _one_line(_error_detail(response))
        raise KinoError(f"storage refused {what}: {detail} (HTTP {response.status_code})")


def _reached(where: str, lines: Iterator[str]) -> Iterator[str]:
    """`lines`, with a broken connection a `KinoError` as elsewhere."""
    try:
        yield from lines
    except httpx.TimeoutException:
        raise KinoError(f"{where} went silent") from None
    except httpx.HTTPError as error:
        raise KinoError(f"talking to {where} failed: {_one_line(str(error))}") from None


class KinoClient:
    """A session with one gateway, as the user the token belongs to (if any).

    Presigned storage URLs (uploads, downloads) are fetched with a second client that
    never carries the token: the URL is the credential there.
    """

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        timeout = httpx.Timeout(IO_TIMEOUT, connect=CONNECT_TIMEOUT)
        self._gateway = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._storage = httpx.Client(timeout=timeout)

    def __enter__(self) -> KinoClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._gateway.close()
        self._storage.close()

    # -- plumbing ------------------------------------------------------------------

    def _headers(self, auth: Auth) -> dict[str, str]:
        if auth is Auth.NONE or self._token is None:
            if auth is Auth.REQUIRED:
                raise KinoError(NOT_SIGNED_IN)
            return {}
        return {"Authorization": f"Bearer {self._token}"}

    @contextmanager
    def _reaching(self, where: str) -> Iterator[None]:
        """Turn httpx's transport errors into one line naming what was not reached."""
        try:
            yield
        except httpx.ConnectError as error:
            raise KinoError(f"cannot reach {where}: {_one_line(str(error))}") from None
        except httpx.TimeoutException:
            raise KinoError(f"{where} did not answer in time") from None
        except httpx.HTTPError as error:
            raise KinoError(f"talking to {where} failed: {_one_line(str(error))}") from None

    def _call(
        self,
        method: str,
        path: str,
        auth: Auth,
        *,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one API request; any answer but a 2xx is a `KinoError`."""
        headers = {**self._headers(auth), **(headers or {})}
        with self._reaching(f"Kino at {self.base_url}"):
            response = self._gateway.request(method, path, headers=headers, **kwargs)
        self._check(response, auth)
        return response

    def _check(self, response: httpx.Response, auth: Auth) -> None:
        if response.status_code == 401 and auth is not Auth.NONE:
            raise KinoError(NOT_SIGNED_IN)
        if response.is_error:
            detail = _one_line(_error_detail(response))
            raise KinoError(f"{detail} (HTTP {response.status_code})")

    @staticmethod
    def _parse(model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            request = response.request
            raise KinoError(
                f"unexpected answer to {request.method} {request.url.path} "
                f"(HTTP {response.status_code})"
            ) from None

    # -- users -------------------------------------------------------------------

    def register(self, email: str, password: str) -> str:
        """Create an account; returns the new user's id."""
        form = {"email": email, "password": password, "password_confirmation": password}
        response = self._call("POST", "/api/v1/users/registration", Auth.NONE, data=form)
        return self._parse(Document[Resource[UserAttributes]], response).data.id

    def sign_in(self, email: str, password: str) -> str:
        """A new access token for the account."""
        form = {"email": email, "password": password}
        response = self._call("POST", "/api/v1/users/session", Auth.NONE, data=form)
        return self._parse(Document[Resource[TokenAttributes]], response).data.attributes.access

    # -- hosting ------------------------------------------------------------------

    def upload_config(self) -> UploadConfig:
        response = self._call("GET", "/video/upload/config", Auth.REQUIRED)
        return self._parse(UploadConfig, response)

    def upload_instructions(self, content_type: str, file_name: str) -> UploadInstructions:
        """Creates a pending video and returns the presigned POST that stores its file."""
        params = {"file_content_type": content_type, "file_name": file_name}
        response = self._call("GET", "/video/upload/", Auth.REQUIRED, params=params)
        return self._parse(UploadInstructions, response)

    def post_to_storage(
        self,
        instructions: UploadInstructions,
        path: Path,
        content_type: str,
        on_sent: OnSent,
    ) -> None:
        """POST the file straight to storage with the policy's fields, as a browser would."""
        body = MultipartBody.of_file(instructions.signatures, "file", path, content_type)
        with self._reaching("storage"):
            response = self._storage.post(
                instructions.url, content=body.chunks(on_sent), headers=body.headers
            )
        _check_storage(response, "the upload")

    def begin_multipart(self, content_type: str, file_name: str, size: int) -> MultipartUpload:
        """Creates a pending video whose file is to be sent in parts."""
        body = {"file_name": file_name, "file_content_type": content_type, "size": size}
        response = self._call("POST", "/video/upload/multipart", Auth.REQUIRED, json=body)
        return self._parse(MultipartUpload, response)

    def multipart_upload(self, hash_id: str) -> MultipartUpload | None:
        """A resumable upload of the account still in progress, with the parts stored;
        None if `hash_id` is no such upload (a POST upload, done, expired, aborted)."""
        headers = self._headers(Auth.REQUIRED)
        with self._reaching(f"Kino at {self.base_url}"):
            response = self._gateway.get(f"/video/upload/multipart/{hash_id}", headers=headers)
        if response.status_code in {404, 410}:
            return None
        self._check(response, Auth.REQUIRED)
        return self._parse(MultipartUpload, response)

    def put_part(self, hash_id: str, number: int, data: bytes, on_sent: OnSent) -> str:
        """PUT one part straight to storage, at the presigned URL Kino gives for it;
        returns the part's ETag."""
        path = f"/video/upload/multipart/{hash_id}/parts/{number}"
        url = self._parse(PartUrl, self._call("GET", path, Auth.REQUIRED)).url

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(data), CHUNK_SIZE):
                chunk = data[start : start + CHUNK_SIZE]
                yield chunk
                on_sent(len(chunk))

        # A stated length: storage refuses a part sent with chunked encoding.
        headers = {"Content-Length": str(len(data))}
        with self._reaching("storage"):
            response = self._storage.put(url, content=chunks(), headers=headers)
        _check_storage(response, f"part {number}")
        return str(response.headers.get("ETag", ""))

    def complete_multipart(self, hash_id: str, etags: Mapping[int, str]) -> None:
        """Join the parts: those named by their ETags, which settles which copy of a
        part sent twice is meant."""
        parts = [{"part_number": n, "etag": etag} for n, etag in etags.items() if etag]
        path = f"/video/upload/multipart/{hash_id}/complete"
        self._call("POST", path, Auth.REQUIRED, json={"parts": parts})

    def update_video(
        self, hash_id: str, *, title: str | None = None, is_private: bool | None = None
    ) -> None:
        changes = {"title": title, "is_private": is_private}
        body = {name: value for name, value in changes.items() if value is not None}
        self._call("PUT", f"/video/my/{hash_id}", Auth.REQUIRED, json=body)

    def delete_video(self, hash_id: str) -> None:
        self._call("DELETE", f"/video/my/{hash_id}", Auth.REQUIRED)

    def my_videos(self) -> MyVideos:
        return self._parse(MyVideos, self._call("GET", "/video/my/", Auth.REQUIRED))

    def explore(self, *, include_my: bool = False, next_page: str | None = None) -> VideosPage:
        params: dict[str, str] = {"include_my": "true" if include_my else "false"}
        if next_page is not None:
            params["next"] = next_page
        response = self._call("GET", "/video/explore/", Auth.OPTIONAL, params=params)
        return self._parse(VideosPage, response)

    def watch(self, user_id: str, hash_id: str) -> WatchRecord:
        params = {"user_id": user_id, "hash_id": hash_id}
        response = self._call("GET", "/video/watch/", Auth.OPTIONAL, params=params)
        return self._parse(WatchRecord, response)

    # -- trimming -------------------------------------------------------------------

    def create_trim(
        self,
        path: Path,
        content_type: str,
        *,
        name: str,
        start: float,
        duration: float,
        on_sent: OnSent,
    ) -> str:
        """Upload a source with the span to cut; returns the video's id."""
        fields = {"name": name, "trimming_start_time": str(start), "duration": str(duration)}
        body = MultipartBody.of_file(fields, "source_file", path, content_type)
        response = self._call(
            "POST",
            "/api/v1/users/videos",
            Auth.REQUIRED,
            content=body.chunks(on_sent),
            headers=body.headers,
        )
        return self._parse(Document[Resource[UploadedVideoAttributes]], response).data.id

    def trim_requests(self) -> list[TrimRequest]:
        """The account's trim requests, newest first."""
        response = self._call("GET", "/api/v1/users/requests", Auth.REQUIRED)
        return self._parse(Document[list[TrimRequest]], response).data

    def clips(self) -> list[Clip]:
        response = self._call("GET", "/api/v1/users/videos", Auth.REQUIRED)
        return self._parse(Document[list[Clip]], response).data

    # -- live events --------------------------------------------------------------

    @contextmanager
    def events(self, last_event_id: str | None = None) -> Iterator[Iterator[ServerEvent]]:
        """The account's live event stream, open once this returns (a later event is
        not missed); after `last_event_id`, when given, the events that followed it."""
        headers = self._headers(Auth.REQUIRED)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        # No read timeout of its own: idle, the stream still sends a heartbeat.
        timeout = httpx.Timeout(IO_TIMEOUT, connect=CONNECT_TIMEOUT)
        where = f"Kino at {self.base_url}"
        with (
            self._reaching(where),
            self._gateway.stream(
                "GET", "/api/v1/users/events", headers=headers, timeout=timeout
            ) as response,
        ):
            if response.is_error:
                response.read()
            self._check(response, Auth.REQUIRED)
            yield server_events(_reached(where, response.iter_lines()))

    # -- storage ----------------------------------------------------------------

    @contextmanager
    def download(self, url: str) -> Iterator[tuple[int | None, Iterator[bytes]]]:
        """A presigned download: its length when known, and its bytes as they arrive."""
        with self._reaching("storage"), self._storage.stream("GET", url) as response:
            if response.is_error:
                response.read()
                detail = _one_line(_error_detail(response))
                raise KinoError(f"storage refused the download: {detail}")
            length = response.headers.get("Content-Length")
            yield (int(length) if length else None), response.iter_bytes()
