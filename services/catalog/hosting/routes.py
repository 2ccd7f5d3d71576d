"""HTTP edges of the hosting API (seed 000): parse, call the domain, render."""

from __future__ import annotations

import json
import re

from aiohttp import web

from services.catalog.errors import VideoNotFound
from services.catalog.hosting.repository import Video, VideoStatus
from services.catalog.hosting.schemas import (
    ExploreQuery,
    FileUploadSignedInstructions,
    LadderPublic,
    MultipartCompleteBody,
    MultipartUploadBody,
    MultipartUploadRecord,
    MultipartUploadState,
    PageQuery,
    PartNumberPath,
    PartUploadUrl,
    PlaylistLinkQuery,
    RungPublic,
    UnprocessedVideo,
    UploadedPart,
    UploadQuery,
    UserVideosList,
    VideoPublic,
    VideosPage,
    VideoUpdateBody,
    VideoUploadConfigRecord,
    WatchQuery,
    WatchVideoRecord,
)
from services.catalog.hosting.service import HostingService, VideoPage, VideoUpdate
from services.catalog.keys import HOSTING_SERVICE
from shared import hls
from shared.http import IDENTITY, REQUEST_ID, json_response, parse, require_user

routes = web.RouteTableDef()


def _public(hosting: HostingService, video: Video, *, for_owner: bool = False) -> VideoPublic:
    return VideoPublic.of(video, hosting.url_for(video.thumbnail_key), for_owner=for_owner)


def _page(hosting: HostingService, page: VideoPage) -> web.Response:
    return json_response(
        VideosPage(videos=[_public(hosting, v) for v in page.videos], next=page.next_cursor)
    )


async def _json_body(request: web.Request, *, empty: object = None) -> object:
    """The JSON body, `empty` if there is none; None (a validation error for the model)
    if it is not JSON."""
    raw = await request.read()
    if not raw.strip():
        return empty
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


@routes.get("/video/upload/config")
async def upload_config(request: web.Request) -> web.Response:
    require_user(request)
    policy = request.app[HOSTING_SERVICE].policy
    return json_response(
        VideoUploadConfigRecord(
            max_size_in_bytes=policy.max_size_bytes,
            valid_file_types=list(policy.valid_file_types),
        )
    )


@routes.get("/video/upload/")
async def upload_instructions(request: web.Request) -> web.Response:
    user_id = require_user(request)
    query = parse(UploadQuery, dict(request.query), "query")
    _, form = await request.app[HOSTING_SERVICE].request_upload(
        user_id, query.file_content_type, query.file_name
    )
    return json_response(FileUploadSignedInstructions(url=form.url, signatures=form.fields))


@routes.post("/video/upload/multipart")
async def begin_multipart_upload(request: web.Request) -> web.Response:
    user_id = require_user(request)
    body = parse(MultipartUploadBody, await _json_body(request), "body")
    video, multipart = await request.app[HOSTING_SERVICE].begin_multipart_upload(
        user_id, body.file_content_type, body.file_name, body.size
    )
    return json_response(MultipartUploadRecord.of(video, multipart), status=201)


@routes.get("/video/upload/multipart/{hash_id}")
async def multipart_upload(request: web.Request) -> web.Response:
    video, multipart, parts = await request.app[HOSTING_SERVICE].multipart_upload(
        require_user(request), request.match_info["hash_id"]
    )
    record = MultipartUploadRecord.of(video, multipart)
    uploaded = [UploadedPart(part_number=p.number, size=p.size, etag=p.etag) for p in parts]
    return json_response(MultipartUploadState(**vars(record), uploaded_parts=uploaded))


@routes.get("/video/upload/multipart/{hash_id}/parts/{part_number}")
async def part_upload_url(request: web.Request) -> web.Response:
    user_id = require_user(request)
    path = parse(PartNumberPath, dict(request.match_info), "path")
    url, video = await request.app[HOSTING_SERVICE].part_upload_url(
        user_id, path.hash_id, path.part_number
    )
    return json_response(
        PartUploadUrl(part_number=path.part_number, url=url, expires_at=video.upload_expires_at)
    )


@routes.post("/video/upload/multipart/{hash_id}/complete")
async def complete_multipart_upload(request: web.Request) -> web.Response:
    user_id = require_user(request)
    body = parse(MultipartCompleteBody, await _json_body(request, empty={}), "body")
    video = await request.app[HOSTING_SERVICE].complete_multipart_upload(
        user_id,
        request.match_info["hash_id"],
        {part.part_number: part.etag for part in body.parts},
        correlation_id=request[REQUEST_ID],
    )
    return json_response(UnprocessedVideo.of(video), status=202)


@routes.delete("/video/upload/multipart/{hash_id}")
async def abort_multipart_upload(request: web.Request) -> web.Response:
    await request.app[HOSTING_SERVICE].abort_multipart_upload(
        require_user(request), request.match_info["hash_id"]
    )
    return web.Response(status=204)


@routes.get("/video/my/")
async def my_videos(request: web.Request) -> web.Response:
    hosting = request.app[HOSTING_SERVICE]
    videos = await hosting.my_videos(require_user(request))
    return json_response(
        UserVideosList(
            videos=[
                _public(hosting, v, for_owner=True)
                for v in videos
                if v.status is VideoStatus.PROCESSED
            ],
            unprocessed_videos=[
                UnprocessedVideo.of(v) for v in videos if v.status is not VideoStatus.PROCESSED
            ],
        )
    )


@routes.put("/video/my/{hash_id}")
async def update_video(request: web.Request) -> web.Response:
    user_id = require_user(request)
    body = parse(VideoUpdateBody, await _json_body(request), "body")
    await request.app[HOSTING_SERVICE].update(
        user_id,
        request.match_info["hash_id"],
        VideoUpdate(title=body.title, description=body.description, is_private=body.is_private),
    )
    return web.Response(status=204)


@routes.delete("/video/my/{hash_id}")
async def delete_video(request: web.Request) -> web.Response:
    await request.app[HOSTING_SERVICE].delete(
        require_user(request), request.match_info["hash_id"], correlation_id=request[REQUEST_ID]
    )
    return web.Response(status=204)


@routes.post("/video/my/{hash_id}/retry")
async def retry_video(request: web.Request) -> web.Response:
    video = await request.app[HOSTING_SERVICE].retry(
        require_user(request), request.match_info["hash_id"], correlation_id=request[REQUEST_ID]
    )
    return json_response(UnprocessedVideo.of(video), status=202)


@routes.get("/video/explore/")
async def explore(request: web.Request) -> web.Response:
    query = parse(ExploreQuery, dict(request.query), "query")
    hosting = request.app[HOSTING_SERVICE]
    page = await hosting.explore(
        request[IDENTITY].user_id, include_my=query.include_my, cursor=query.next
    )
    return _page(hosting, page)


@routes.get("/video/user/{user_id}")
async def user_videos(request: web.Request) -> web.Response:
    query = parse(PageQuery, dict(request.query), "query")
    hosting = request.app[HOSTING_SERVICE]
    page = await hosting.user_videos(request.match_info["user_id"], query.next)
    return _page(hosting, page)


@routes.get("/video/watch/")
async def watch(request: web.Request) -> web.Response:
    query = parse(WatchQuery, dict(request.query), "query")
    hosting = request.app[HOSTING_SERVICE]
    video = await hosting.watch(request[IDENTITY].user_id, query.user_id, query.hash_id)
    watchable_url = hosting.url_for(video.playback_key)
    assert watchable_url is not None  # a processed video has a playback file
    return json_response(
        WatchVideoRecord(
            watchable_url=watchable_url,
            video=_public(hosting, video),
            hls_url=hosting.hls_url(video, _gateway_url(request)),
            ladder=_ladder(hosting, video),
        )
    )


def _gateway_url(request: web.Request) -> str:
    """Where the client reached the gateway, which says so (catalog is not public)."""
    host = request.headers.get("X-Forwarded-Host", request.host)
    return f"{request.headers.get('X-Forwarded-Proto', request.scheme)}://{host}"


def _ladder(hosting: HostingService, video: Video) -> LadderPublic | None:
    if not video.renditions:
        return None
    return LadderPublic(
        renditions=[
            RungPublic(
                height=r.height,
                width=r.width,
                bandwidth=r.bandwidth,
                url=hosting.url_for(r.key) or "",
            )
            for r in video.renditions
        ],
        pending=list(video.ladder_pending),
        progress=video.ladder_progress,
        eta_seconds=video.ladder_eta_seconds,
        failure_reason=video.ladder_failure_reason,
    )


def _playlist_response(text: str) -> web.Response:
    # Links carry their own right (no cookies): any page may play them (embeds).
    return web.Response(
        text=text,
        content_type=hls.CONTENT_TYPE,
        headers={"Cache-Control": "private, no-store", "Access-Control-Allow-Origin": "*"},
    )


@routes.get("/video/hls/{hash_id}/{playlist}")
async def playlist(request: web.Request) -> web.Response:
    """`master.m3u8` or a rung's `<height>p.m3u8`, for a signed link (`PlaylistLinkQuery`)."""
    hosting = request.app[HOSTING_SERVICE]
    hash_id, name = request.match_info["hash_id"], request.match_info["playlist"]
    link = PlaylistLinkQuery.model_validate(dict(request.query))
    if name == "master.m3u8":
        text = await hosting.master_playlist(hash_id, link.expires, link.signature)
    elif rung := re.fullmatch(r"(\d{1,5})p\.m3u8", name):
        height = int(rung.group(1))
        text = await hosting.media_playlist(hash_id, height, link.expires, link.signature)
    else:
        raise VideoNotFound
    return _playlist_response(text)
