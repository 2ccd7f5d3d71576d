"""HTTP edges of the trimming API (seed 004, JSON:API): parse, call the domain, render."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from services.catalog.keys import TRIMMING_SERVICE
from services.catalog.trimming.schemas import (
    ClipAttributes,
    ClipResource,
    RequestResource,
    TrimForm,
    UploadedVideoAttributes,
    UploadedVideoResource,
    hh_mm_ss,
)
from services.catalog.trimming.service import ReceivedUpload, TrimOrder
from services.catalog.trimming.upload import receive_upload
from shared.http import (
    JSONAPI_CONTENT_TYPE,
    REQUEST_ID,
    JsonApiDocument,
    json_response,
    parse,
    require_user,
)

routes = web.RouteTableDef()

POINTER_BASE = "/data/attributes"


def _trim_order(received: ReceivedUpload) -> TrimOrder:
    fields = {**received.fields, "source_file": bool(received.file_size)}
    form = parse(TrimForm, fields, POINTER_BASE)
    return TrimOrder(form.name, form.trimming_start_time, form.duration)


@routes.post("/api/v1/users/videos")
async def upload_video(request: web.Request) -> web.Response:
    job = await request.app[TRIMMING_SERVICE].accept_upload(
        require_user(request),
        partial(receive_upload, request),
        _trim_order,
        correlation_id=request[REQUEST_ID],
    )
    document = JsonApiDocument[UploadedVideoResource](
        data=UploadedVideoResource(
            id=job.video_id, attributes=UploadedVideoAttributes(name=job.name)
        )
    )
    return json_response(document, status=201, content_type=JSONAPI_CONTENT_TYPE)


@routes.get("/api/v1/users/videos")
async def clips(request: web.Request) -> web.Response:
    found = await request.app[TRIMMING_SERVICE].clips(require_user(request))
    document = JsonApiDocument[list[ClipResource]](
        data=[
            ClipResource(
                id=clip.video_id,
                attributes=ClipAttributes(
                    duration=hh_mm_ss(clip.duration_seconds),
                    url=clip.url,
                    requested_start=clip.requested_start,
                    requested_duration=clip.requested_duration,
                    actual_start=clip.actual_start,
                    actual_duration=clip.duration_seconds,
                    cut_method=clip.cut_method,
                    reencode_reason=clip.reencode_reason,
                ),
            )
            for clip in found
        ]
    )
    return json_response(document, content_type=JSONAPI_CONTENT_TYPE)


@routes.get("/api/v1/users/requests")
async def requests(request: web.Request) -> web.Response:
    jobs = await request.app[TRIMMING_SERVICE].requests(require_user(request))
    return json_response(
        JsonApiDocument[list[RequestResource]](data=[RequestResource.of(job) for job in jobs]),
        content_type=JSONAPI_CONTENT_TYPE,
    )


@routes.post("/api/v1/users/requests/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    job = await request.app[TRIMMING_SERVICE].restart(
        require_user(request), request.match_info["id"], correlation_id=request[REQUEST_ID]
    )
    return json_response(
        JsonApiDocument[RequestResource](data=RequestResource.of(job)),
        content_type=JSONAPI_CONTENT_TYPE,
    )
