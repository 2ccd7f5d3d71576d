"""HTTP edges shared by every service: the two API error styles, request ids, identity.

Kino serves two API surfaces with different error bodies:

* the hosting API (`/video/...`, `/health_check`): FastAPI style, `{"detail": "..."}`
  and validation errors as `{"detail": [{"loc", "msg", "type"}]}`;
* the trimming API (`/api/...`): JSON:API, `{"errors": [{"detail", "source"}],
  "jsonapi": {"version": "1.0"}}` with content type `application/vnd.api+json`.

`ErrorStyle` renders both from pydantic models; `error_middleware` maps a
service's domain errors to status codes with one table.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.forms import MalformedBody, read_form
from shared.identity import IDENTITY_HEADER, Identity, IdentityVerifier, InvalidIdentity

log = structlog.get_logger(__name__)

JSONAPI_CONTENT_TYPE = "application/vnd.api+json"
REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity", Identity)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- bodies --------------------------------------------------------------------


class HTTPErrorBody(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(BaseModel):
    detail: list[ValidationErrorItem]


class JsonApiVersion(BaseModel):
    version: str = "1.0"


DataT = TypeVar("DataT")


class JsonApiDocument(BaseModel, Generic[DataT]):
    """A JSON:API top-level document: `{"data": …, "jsonapi": {"version": "1.0"}}`."""

    data: DataT
    jsonapi: JsonApiVersion = JsonApiVersion()


class JsonApiErrorSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pointer: str | None = None
    parameter: str | None = None


class JsonApiError(BaseModel):
    detail: str
    source: JsonApiErrorSource = JsonApiErrorSource()


class JsonApiErrorDocument(BaseModel):
    errors: list[JsonApiError]
    jsonapi: JsonApiVersion = JsonApiVersion()


def json_response(
    body: BaseModel,
    *,
    status: int = 200,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Render a pydantic model; `None` fields are left out, as the seeds show them."""
    return web.Response(
        body=body.model_dump_json(exclude_none=True).encode(),
        status=status,
        content_type=content_type,
        headers=headers,
    )


# -- styles --------------------------------------------------------------------


def _hosting_error(detail: str, _pointer: str | None) -> BaseModel:
    return HTTPErrorBody(detail=detail)


def _hosting_validation_error(exc: ValidationError, location: str) -> BaseModel:
    return HTTPValidationError(
        detail=[
            ValidationErrorItem(loc=[location, *err["loc"]], msg=err["msg"], type=err["type"])
            for err in exc.errors(include_url=False)
        ]
    )


def _jsonapi_error(detail: str, pointer: str | None) -> BaseModel:
    return JsonApiErrorDocument(
        errors=[JsonApiError(detail=detail, source=JsonApiErrorSource(pointer=pointer))]
    )


def _jsonapi_validation_error(exc: ValidationError, location: str) -> BaseModel:
    return JsonApiErrorDocument(
        errors=[
            JsonApiError(
                detail=_jsonapi_detail(err),
                source=JsonApiErrorSource(
                    pointer="/".join([location, *(str(part) for part in err["loc"])])
                ),
            )
            for err in exc.errors(include_url=False)
        ]
    )


def _jsonapi_detail(err: Any) -> str:
    """A sentence naming the field, as in `Email can't be blank`."""
    field = str(err["loc"][-1]).replace("_", " ").capitalize() if err["loc"] else "Body"
    if err["type"] == "missing":
        return f"{field} can't be blank"
    # pydantic prefixes custom errors with "Value error, "; the reader wants the reason.
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{field} {message[:1].lower()}{message[1:]}"


@dataclass(frozen=True)
class ErrorStyle:
    """How one API surface renders errors: a row of the table below, not a branch."""

    content_type: str
    unauthenticated_detail: str
    #: The body of an error; the JSON:API style names the field at `pointer`.
    error_body: Callable[[str, str | None], BaseModel]
    #: The body of a 422 from a pydantic error. `location`: hosting `query`/`body`,
    #: JSON:API the pointer base.
    validation_body: Callable[[ValidationError, str], BaseModel]

    def error(
        self,
        status: int,
        detail: str,
        *,
        pointer: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        return json_response(
            self.error_body(detail, pointer),
            status=status,
            content_type=self.content_type,
            headers=headers,
        )

    def validation_error(self, exc: ValidationError, *, location: str) -> web.Response:
        return json_response(
            self.validation_body(exc, location), status=422, content_type=self.content_type
        )

    def unauthenticated(self) -> web.Response:
        headers = {"WWW-Authenticate": "Bearer"}
        return self.error(401, self.unauthenticated_detail, headers=headers)


HOSTING_STYLE = ErrorStyle(
    content_type="application/json",
    unauthenticated_detail="Not authenticated",
    error_body=_hosting_error,
    validation_body=_hosting_validation_error,
)
JSONAPI_STYLE = ErrorStyle(
    content_type=JSONAPI_CONTENT_TYPE,
    unauthenticated_detail="Not authorized",
    error_body=_jsonapi_error,
    validation_body=_jsonapi_validation_error,
)


def style_for_path(path: str) -> ErrorStyle:
    """The trimming API lives under `/api/`; everything else is the hosting API."""
    return JSONAPI_STYLE if path.startswith("/api/") else HOSTING_STYLE


# -- middlewares ---------------------------------------------------------------


class InvalidRequest(Exception):
    """A request part failed validation; rendered as the surface's 422."""

    def __init__(self, error: ValidationError, location: str) -> None:
        super().__init__(str(error))
        self.error = error
        #: hosting: `query` / `body` / `path`; JSON:API: the pointer base.
        self.location = location


M = TypeVar("M", bound=BaseModel)


_JSON_TYPES = frozenset({"application/json", JSONAPI_CONTENT_TYPE})


async def read_attributes(request: web.Request) -> dict[str, Any]:
    """The fields of a JSON:API surface's POST, however a client sends them: a JSON:API
    document's `data.attributes`, a flat JSON object, or form fields."""
    if request.content_type in _JSON_TYPES:
        try:
            body = json.loads(await request.read() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedBody("Request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise MalformedBody("Request body must be a JSON object")
        data = body.get("data")
        if isinstance(data, dict) and isinstance(data.get("attributes"), dict):
            return dict(data["attributes"])
        return body
    return dict(await read_form(request))


def parse(model: type[M], data: object, location: str) -> M:
    """Validate `data` against `model`, raising `InvalidRequest` for the 422."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(exc, location) from exc


class NotAuthenticated(Exception):
    """The endpoint needs a signed-in user and the gateway vouched for none."""


@dataclass(frozen=True)
class ErrorMapping:
    status: int
    #: JSON:API `source.pointer` for errors about one field.
    pointer: str | None = None
    headers: Callable[[Exception], Mapping[str, str]] | None = None
    #: An empty `text/html` body instead of the surface's error document (seed 004
    #: shows its 404 that way).
    bare_html: bool = False


def error_middleware(table: Mapping[type[Exception], ErrorMapping]) -> Any:
    """Map domain errors to responses in the style of the request's surface.

    A body no endpoint could read (`MalformedBody`) is a 400. Unexpected errors become
    a 500 in the same style, logged with the traceback.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        style = style_for_path(request.path)
        try:
            return await handler(request)
        except NotAuthenticated:
            return style.unauthenticated()
        except InvalidRequest as exc:
            return style.validation_error(exc.error, location=exc.location)
        except MalformedBody as exc:
            return style.error(400, str(exc))
        except ConnectionResetError:
            # The client went away mid-body: expected, and nobody reads this answer.
            log.info("client disconnected before the request body ended", path=request.path)
            return style.error(400, "Request body ended early")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return style.error(exc.status, exc.reason, headers=_extra_headers(exc))
        except tuple(table) as exc:
            mapping = _lookup(table, exc)
            headers = mapping.headers(exc) if mapping.headers else None
            if mapping.bare_html:
                return web.Response(
                    status=mapping.status, content_type="text/html", headers=headers
                )
            return style.error(mapping.status, str(exc), pointer=mapping.pointer, headers=headers)
        except Exception:
            log.exception("unhandled error", path=request.path)
            return style.error(500, "Internal server error")

    return middleware


def _lookup(table: Mapping[type[Exception], ErrorMapping], exc: Exception) -> ErrorMapping:
    for klass in type(exc).__mro__:
        if klass in table:
            return table[klass]
    raise LookupError(type(exc))


def _extra_headers(exc: web.HTTPException) -> dict[str, str]:
    return {
        k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after", "location"}
    }


def new_request_id() -> str:
    return uuid.uuid4().hex


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Adopt the caller's `X-Request-Id` when it looks sane, else make one; log the request."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else new_request_id()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        response = await handler(request)
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: also reaches streamed responses the middleware cannot."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


def identity_middleware(verifier: IdentityVerifier, open_paths: Iterable[str]) -> Any:
    """Refuse any request the gateway did not vouch for (except `open_paths`)."""
    exempt = frozenset(open_paths)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in exempt:
            return await handler(request)
        try:
            request[IDENTITY] = verifier.verify(request.headers.get(IDENTITY_HEADER))
        except InvalidIdentity as exc:
            log.warning("request without a valid gateway identity", reason=str(exc))
            return style_for_path(request.path).unauthenticated()
        return await handler(request)

    return middleware


def require_user(request: web.Request) -> str:
    user_id = request[IDENTITY].user_id
    if user_id is None:
        raise NotAuthenticated("Not authenticated")
    return user_id
