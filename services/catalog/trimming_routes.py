"""HTTP edges of the trimming API (seed 004, JSON:API): parse, call the domain, render."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from services.catalog.keys import TRIMMING
from services.catalog.trim_repository import TrimJob
from services.catalog.trim_upload import receive_upload
from services.catalog.trimming_schemas import (
    ClipAttributes,
    ClipResource,
    RequestAttributes,
    RequestResource,
    TrimForm,
    UploadedVideoAttributes,
    UploadedVideoResource,
    hh_mm_ss,
)
from services.catalog.trimming_service import TrimOrder
from shared.http import (
    JSONAPI_CONTENT_TYPE,
    REQUEST_ID,
    InvalidRequest,
    JsonApiDocument,
    json_response,
    parse,
    require_user,
)

routes = web.RouteTableDef()

POINTER_BASE = "/data/attributes"


def _request(job: TrimJob) -> RequestResource:
    return RequestResource(
        id=job.request_id,
        attributes=RequestAttributes(status=job.status.value, failure_reason=job.failure_reason),
    )


@routes.post("/api/v1/users/videos")
async def upload_video(request: web.Request) -> web.Response:
    user_id = require_user(request)
    trimming = request.app[TRIMMING]
    video_id = trimming.new_video_id()
    received = await receive_upload(
        request, partial(trimming.store_source, video_id), trimming.max_upload_bytes
    )
    try:
        form = parse(
            TrimForm, {**received.fields, "source_file": bool(received.file_size)}, POINTER_BASE
        )
    except InvalidRequest:
        if received.file_size is not None:
            await trimming.discard_source(video_id)
        raise
    await trimming.schedule(
        user_id,
        video_id,
        TrimOrder(form.name, form.trimming_start_time, form.duration),
        correlation_id=request[REQUEST_ID],
    )
    document = JsonApiDocument[UploadedVideoResource](
        data=UploadedVideoResource(id=video_id, attributes=UploadedVideoAttributes(name=form.name))
    )
    return json_response(document, status=201, content_type=JSONAPI_CONTENT_TYPE)


@routes.get("/api/v1/users/videos")
async def clips(request: web.Request) -> web.Response:
    found = await request.app[TRIMMING].clips(require_user(request))
    document = JsonApiDocument[list[ClipResource]](
        data=[
            ClipResource(
                id=clip.video_id,
                attributes=ClipAttributes(duration=hh_mm_ss(clip.duration_seconds), url=clip.url),
            )
            for clip in found
        ]
    )
    return json_response(document, content_type=JSONAPI_CONTENT_TYPE)


@routes.get("/api/v1/users/requests")
async def requests(request: web.Request) -> web.Response:
    jobs = await request.app[TRIMMING].requests(require_user(request))
    return json_response(
        JsonApiDocument[list[RequestResource]](data=[_request(job) for job in jobs]),
        content_type=JSONAPI_CONTENT_TYPE,
    )


@routes.post("/api/v1/users/requests/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    job = await request.app[TRIMMING].restart(
        require_user(request), request.match_info["id"], correlation_id=request[REQUEST_ID]
    )
    return json_response(
        JsonApiDocument[RequestResource](data=_request(job)), content_type=JSONAPI_CONTENT_TYPE
    )
