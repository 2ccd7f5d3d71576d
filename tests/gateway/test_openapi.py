"""The OpenAPI document at `GET /openapi.json`: a valid OpenAPI 3.1 document that
names every seed operation and every route the gateway routes, with the gateway's
token rules as its security, and error bodies that are the ones the stack sends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

# The official OpenAPI 3.1 schema (OAI/OpenAPI-Specification, 2022-10-07), as
# schemathesis bundles it: offline, and the one the fuzz test's loader checks with.
from schemathesis.specs.openapi.definitions import OPENAPI_31

from services.gateway.openapi import BEARER, build_document
from services.gateway.routes import routes as gateway_routes
from services.gateway.routing import ROUTES, Access, match
from tests.conftest import (
    Account,
    make_user,
    register,
    sign_in,
    unique_email,
    upload_video,
    wait_until_done,
)
from tests.transcoder.media_factory import make_clip

JSON = "application/json"
JSONAPI = "application/vnd.api+json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}

#: The seeds' operations, transcribed (the seeds live beside the design, not in the
#: repository): statuses, query parameters (`True`: required) and request media types.
SEED_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    # seed 000
    ("get", "/health_check"): {"statuses": {200}},
    ("get", "/"): {"statuses": {200}},
    ("get", "/video/explore/"): {
        "statuses": {200, 422},
        "query": {"next": False, "include_my": False},
    },
    ("get", "/video/upload/"): {
        "statuses": {200, 400, 401, 422},
        "query": {"file_content_type": True, "file_name": True},
    },
    ("get", "/video/upload/config"): {"statuses": {200, 401}},
    ("get", "/video/my/"): {"statuses": {200, 401}},
    ("put", "/video/my/{hash_id}"): {"statuses": {204, 400, 401, 404, 422}, "body": {JSON}},
    ("delete", "/video/my/{hash_id}"): {"statuses": {204, 401, 404, 422, 425}},
    ("get", "/video/user/{user_id}"): {"statuses": {200, 404, 422}, "query": {"next": False}},
    ("get", "/video/watch/"): {
        "statuses": {200, 403, 404, 422},
        "query": {"user_id": True, "hash_id": True},
    },
    # seed 004
    ("post", "/api/v1/users/registration"): {"statuses": {201}, "body": {FORM}},
    ("post", "/api/v1/users/session"): {"statuses": {201}, "body": {FORM}},
    ("get", "/api/v1/users/requests"): {"statuses": {200, 401}},
    ("post", "/api/v1/users/requests/{id}/restart"): {"statuses": {200, 401, 404}},
    ("post", "/api/v1/users/videos"): {"statuses": {201, 401}, "body": {MULTIPART}},
    ("get", "/api/v1/users/videos"): {"statuses": {200, 401}},
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of `schema` whose `#/components/...` references resolve in `document`."""
    return Draft202012Validator({**schema, "components": document["components"]})


# -- the document itself -----------------------------------------------------


def test_is_a_valid_openapi_3_1_document(document: dict[str, Any]) -> None:
    Draft202012Validator(OPENAPI_31).validate(document)
    assert document["openapi"].startswith("3.1.")
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_openapi_spec_validator_accepts_it(document: dict[str, Any]) -> None:
    # The specification's own rules beyond its JSON Schema (unique operation ids, path
    # parameters declared, references that resolve): raises on the first broken one.
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    text = repr(document)
    for name in set(re.findall(r"#/components/schemas/([^'\"]+)", text)):
        assert name in document["components"]["schemas"], name


def test_every_seed_operation_is_documented_with_its_statuses_and_parameters(
    document: dict[str, Any],
) -> None:
    for (method, path), seed in SEED_OPERATIONS.items():
        operation = document["paths"][path][method]
        documented = {int(status) for status in operation["responses"]}
        assert seed["statuses"] <= documented, (method, path)
        query = {
            p["name"]: p["required"] for p in operation.get("parameters", []) if p["in"] == "query"
        }
        assert query == seed.get("query", {}), (method, path)
        if "body" in seed:
            assert seed["body"] <= set(operation["requestBody"]["content"]), (method, path)


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)


def test_every_route_of_the_gateway_is_documented(document: dict[str, Any]) -> None:
    paths = list(document["paths"])
    for route in ROUTES:
        assert any(route.pattern.match(path) for path in paths), route.pattern.pattern
    own = {
        (definition.method.lower(), definition.path)
        for definition in gateway_routes
        if isinstance(definition, web.RouteDef) and "{" not in definition.path
    }
    assert own == {
        ("get", "/health_check"),
        ("get", "/"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
    }
    assert own <= {(method, path) for method, path, _ in operations(document)}


def test_every_documented_path_is_routed_by_the_gateway(document: dict[str, Any]) -> None:
    own = {"/health_check", "/", "/openapi.json", "/docs"}
    for path in document["paths"]:
        assert path in own or match(path) is not None, path


def test_security_is_the_gateways_token_rule(document: dict[str, Any]) -> None:
    expected = {
        Access.PUBLIC: None,
        Access.OPTIONAL: [{}, {BEARER: []}],
        Access.REQUIRED: [{BEARER: []}],
    }
    for method, path, operation in operations(document):
        route = match(path)
        access = Access.PUBLIC if route is None else route.access
        assert operation.get("security") == expected[access], (method, path)
        if access is not Access.PUBLIC:
            assert "401" in operation["responses"], (method, path)
    scheme = document["components"]["securitySchemes"][BEARER]
    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_surfaces_answer_in_their_own_style(document: dict[str, Any]) -> None:
    """Hosting errors are `{"detail": ...}` JSON, trimming ones JSON:API documents;
    besides, any operation may get the HTTP server's plain-text 400 for a request that
    is not valid HTTP."""
    for method, path, operation in operations(document):
        assert operation["responses"]["400"]["content"]["text/plain"] == {
            "schema": {"type": "string"}
        }, (method, path)
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            for media_type, content in response["content"].items():
                if (status, media_type) == ("400", "text/plain"):
                    continue
                ref = content.get("schema", {}).get("$ref", "")
                if path.startswith("/api/"):
                    assert media_type in {JSONAPI, "text/html"}, (method, path, status)
                    assert media_type == "text/html" or ref.endswith("/JsonApiErrorDocument")
                else:
                    assert media_type == JSON, (method, path, status)
                    body = "HTTPValidationError" if status == "422" else "HTTPErrorBody"
                    assert ref.endswith(f"/{body}"), (method, path, status)


def test_the_trim_upload_is_multipart_with_a_binary_file_part(document: dict[str, Any]) -> None:
    body = document["paths"]["/api/v1/users/videos"]["post"]["requestBody"]
    assert body["required"] is True
    ref = body["content"][MULTIPART]["schema"]["$ref"].rsplit("/", 1)[-1]
    form = document["components"]["schemas"][ref]
    assert form["properties"]["source_file"] == {"type": "string", "format": "binary"}
    assert set(form["required"]) == {"name", "source_file", "trimming_start_time", "duration"}


def test_request_examples_are_the_seeds_and_fit_their_schemas(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    examples = 0
    for method, path, operation in operations(document):
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            if "example" not in content:
                continue
            examples += 1
            schema = components[content["schema"]["$ref"].rsplit("/", 1)[-1]]
            for name, value in content["example"].items():
                validator(document, schema["properties"][name]).validate(value)
            # Only file parts are left for the client to add.
            missing = set(schema["required"]) - set(content["example"])
            files = {n for n in missing if schema["properties"][n].get("format") == "binary"}
            assert missing == files, (method, path, media_type)
    assert examples == 2 * 3 + 1  # registration and session: form, multipart, JSON; the trim


def _refs(schema: object) -> Iterator[str]:
    if isinstance(schema, dict):
        if isinstance(ref := schema.get("$ref"), str):
            yield ref.rsplit("/", 1)[-1]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def test_response_fields_that_may_be_none_are_optional_never_null(
    document: dict[str, Any],
) -> None:
    """`json_response` leaves None fields out: no response schema allows null."""
    components = document["components"]["schemas"]
    responses = [op["responses"] for _, _, op in operations(document)]
    reachable: set[str] = set()
    pending = set(_refs(responses))
    while pending:
        name = pending.pop()
        reachable.add(name)
        pending |= set(_refs(components[name])) - reachable
    assert "VideoPublic" in reachable
    for name in reachable:
        assert "'null'" not in repr(components[name]), name
    video = components["VideoPublic"]
    assert "thumbnail_url" not in video["required"]
    assert video["properties"]["thumbnail_url"] == {"title": "Thumbnail Url", "type": "string"}


# -- against the running stack -------------------------------------------------


async def test_the_gateway_serves_the_document_to_anyone(
    http: aiohttp.ClientSession, gateway_url: str, document: dict[str, Any]
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        async with http.get(f"{gateway_url}/openapi.json", headers=headers) as response:
            assert response.status == 200
            assert response.content_type == JSON
            assert await response.json() == document


@dataclass(frozen=True)
class Probe:
    """A request that draws an error, and the documented operation it belongs to."""

    status: int
    method: str
    template: str
    url: str = ""
    authenticated: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.url or self.template


#: A text field that is not UTF-8 (no filename: a plain form field).
INVALID_UTF8_FORM = {
    "data": b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\xfe\r\n--b--\r\n',
    "headers": {"Content-Type": "multipart/form-data; boundary=b"},
}
OVER_LIMIT = b"x" * (1024 * 1024 + 1)

PROBES: tuple[Probe, ...] = (
    Probe(401, "get", "/video/my/", authenticated=False),
    Probe(401, "get", "/api/v1/users/requests", authenticated=False),
    Probe(401, "get", "/video/explore/", authenticated=False,
          kwargs={"headers": {"Authorization": "Bearer not-a-token"}}),
    Probe(400, "get", "/video/explore/", kwargs={"params": {"next": "garbage"}}),
    Probe(422, "get", "/video/explore/", kwargs={"params": {"include_my": "maybe"}}),
    Probe(422, "get", "/video/watch/"),
    Probe(404, "get", "/video/watch/", kwargs={"params": {"user_id": "x", "hash_id": "y"}}),
    Probe(404, "get", "/video/user/{user_id}", "/video/user/nobody"),
    Probe(400, "get", "/video/upload/",
          kwargs={"params": {"file_content_type": "text/plain", "file_name": "a.txt"}}),
    Probe(404, "put", "/video/my/{hash_id}", "/video/my/nope", kwargs={"json": {"title": "t"}}),
    Probe(422, "put", "/video/my/{hash_id}", "/video/my/nope", kwargs={"json": {"title": 5}}),
    Probe(413, "put", "/video/my/{hash_id}", "/video/my/nope", kwargs={"data": OVER_LIMIT}),
    Probe(404, "delete", "/video/my/{hash_id}", "/video/my/nope"),
    Probe(404, "post", "/video/my/{hash_id}/retry", "/video/my/nope/retry"),
    Probe(422, "post", "/api/v1/users/registration", authenticated=False, kwargs={"data": {}}),
    Probe(400, "post", "/api/v1/users/registration", authenticated=False,
          kwargs={"data": b"nope", "headers": {"Content-Type": JSON}}),
    Probe(413, "post", "/api/v1/users/registration", authenticated=False,
          kwargs={"data": OVER_LIMIT, "headers": {"Content-Type": FORM}}),
    Probe(422, "post", "/api/v1/users/session", authenticated=False, kwargs={"data": {}}),
    Probe(422, "post", "/api/v1/users/videos", kwargs={"data": {"name": "no file"}}),
    Probe(400, "post", "/api/v1/users/videos", kwargs=INVALID_UTF8_FORM),
    Probe(404, "post", "/api/v1/users/requests/{id}/restart",
          "/api/v1/users/requests/nope/restart"),
)  # fmt: skip


async def _check_against_document(
    document: dict[str, Any], probe: Probe, response: aiohttp.ClientResponse
) -> None:
    assert response.status == probe.status, (probe, await response.text())
    documented = document["paths"][probe.template][probe.method]["responses"][str(probe.status)]
    assert response.content_type in documented["content"], probe
    schema = documented["content"][response.content_type].get("schema")
    if schema is None:
        assert await response.read() == b"", probe
    else:
        validator(document, schema).validate(await response.json(content_type=None))
    for name, header in documented.get("headers", {}).items():
        validator(document, header["schema"]).validate(
            int(response.headers[name])
            if header["schema"].get("type") == "integer"
            else response.headers[name]
        )


async def test_error_bodies_are_the_documented_ones(
    http: aiohttp.ClientSession, gateway_url: str, document: dict[str, Any]
) -> None:
    account = await make_user(http, gateway_url)
    for probe in PROBES:
        kwargs = dict(probe.kwargs)
        if probe.authenticated:
            kwargs["headers"] = {**kwargs.get("headers", {}), **account.auth}
        async with http.request(probe.method, gateway_url + probe.target, **kwargs) as response:
            await _check_against_document(document, probe, response)


async def test_sign_in_refusals_are_the_documented_ones(
    http: aiohttp.ClientSession, gateway_url: str, document: dict[str, Any]
) -> None:
    """401 for a wrong password, then 429 with `Retry-After` once the email's limit is
    spent (3 failures in the test stack)."""
    account: Account = await make_user(http, gateway_url)
    refused = Probe(401, "post", "/api/v1/users/session", authenticated=False)
    limited = Probe(429, "post", "/api/v1/users/session", authenticated=False)
    for _ in range(3):
        async with await sign_in(http, gateway_url, account.email, "wrong password") as response:
            await _check_against_document(document, refused, response)
    async with await sign_in(http, gateway_url, account.email, "wrong password") as response:
        await _check_against_document(document, limited, response)


async def test_a_taken_email_is_a_documented_422(
    http: aiohttp.ClientSession, gateway_url: str, document: dict[str, Any]
) -> None:
    email = unique_email()
    async with await register(http, gateway_url, email) as first:
        await _check_against_document(
            document, Probe(201, "post", "/api/v1/users/registration"), first
        )
    async with await register(http, gateway_url, email) as again:
        await _check_against_document(
            document, Probe(422, "post", "/api/v1/users/registration"), again
        )


async def test_bodies_of_a_listed_video_are_the_documented_ones(
    http: aiohttp.ClientSession, gateway_url: str, document: dict[str, Any], tmp_path: Path
) -> None:
    """The hosting API's 200s with a processed video in them: every field the seed
    shows, none of them null."""
    account = await make_user(http, gateway_url)
    await asyncio.to_thread(make_clip, tmp_path / "clip.mp4", seconds=1)
    hash_id = await upload_video(http, gateway_url, account, (tmp_path / "clip.mp4").read_bytes())
    state, _ = await wait_until_done(http, gateway_url, account, hash_id)
    assert state == "listed"
    watch = f"/video/watch/?user_id={account.id}&hash_id={hash_id}"
    for probe in (
        Probe(200, "get", "/video/my/"),
        Probe(200, "get", "/video/explore/", "/video/explore/?include_my=true"),
        Probe(200, "get", "/video/user/{user_id}", f"/video/user/{account.id}"),
        Probe(200, "get", "/video/watch/", watch, authenticated=False),
        Probe(200, "get", "/video/upload/config"),
        Probe(200, "get", "/health_check", authenticated=False),
        Probe(307, "get", "/", authenticated=False, kwargs={"allow_redirects": False}),
    ):
        kwargs = dict(probe.kwargs)
        if probe.authenticated:
            kwargs["headers"] = account.auth
        async with http.request(probe.method, gateway_url + probe.target, **kwargs) as response:
            if probe.status == 307:
                assert response.status == 307
                assert response.headers["Location"] == "/health_check"
                continue
            await _check_against_document(document, probe, response)
            body = await response.json()
        if probe.template == "/video/my/":
            [video] = body["videos"]
            assert {"thumbnail_url", "duration_seconds", "listing_time"} <= set(video)
