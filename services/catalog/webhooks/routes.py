"""HTTP edges of the webhooks API (JSON:API, beside the trimming API): parse, call the
domain, render. The secret is rendered only in the response that creates it."""

from __future__ import annotations

from aiohttp import web

from services.catalog.keys import WEBHOOK_SERVICE
from services.catalog.webhooks.repository import Delivery, DeliveryStatus, Endpoint
from services.catalog.webhooks.schemas import (
    DeliveryAttributes,
    DeliveryResource,
    WebhookAttributes,
    WebhookInput,
    WebhookResource,
)
from shared.http import (
    JSONAPI_CONTENT_TYPE,
    JsonApiDocument,
    json_response,
    parse,
    read_attributes,
    require_user,
)

routes = web.RouteTableDef()

POINTER_BASE = "/data/attributes"


def _resource(endpoint: Endpoint, *, with_secret: bool = False) -> WebhookResource:
    return WebhookResource(
        id=endpoint.id,
        attributes=WebhookAttributes(
            url=endpoint.url,
            event_types=endpoint.event_types,
            enabled=endpoint.enabled,
            created_at=endpoint.created_at,
            secret=endpoint.secret if with_secret else None,
        ),
    )


def _attempts(delivery: Delivery) -> list[DeliveryResource]:
    """A delivery's attempts made, and the next one while it is pending."""
    items = [
        DeliveryAttributes(
            event_type=delivery.event_type,
            message_id=delivery.message_id,
            attempt=attempt.number,
            status=attempt.status.value,
            response_code=attempt.response_code,
            error=attempt.error,
            time=attempt.at,
        )
        for attempt in delivery.attempts
    ]
    if delivery.status is DeliveryStatus.PENDING:
        items.append(
            DeliveryAttributes(
                event_type=delivery.event_type,
                message_id=delivery.message_id,
                attempt=len(delivery.attempts) + 1,
                status="pending",
                time=delivery.next_attempt_at,
            )
        )
    return [
        DeliveryResource(id=f"{item.message_id}.{item.attempt}", attributes=item) for item in items
    ]


@routes.post("/api/v1/users/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    user_id = require_user(request)
    data = parse(WebhookInput, await read_attributes(request), POINTER_BASE)
    endpoint = await request.app[WEBHOOK_SERVICE].create(user_id, data)
    return json_response(
        JsonApiDocument[WebhookResource](data=_resource(endpoint, with_secret=True)),
        status=201,
        content_type=JSONAPI_CONTENT_TYPE,
    )


@routes.get("/api/v1/users/webhooks")
async def webhooks(request: web.Request) -> web.Response:
    found = await request.app[WEBHOOK_SERVICE].endpoints(require_user(request))
    return json_response(
        JsonApiDocument[list[WebhookResource]](data=[_resource(e) for e in found]),
        content_type=JSONAPI_CONTENT_TYPE,
    )


@routes.delete("/api/v1/users/webhooks/{id}")
async def delete_webhook(request: web.Request) -> web.Response:
    await request.app[WEBHOOK_SERVICE].delete(require_user(request), request.match_info["id"])
    return web.Response(status=204)


@routes.get("/api/v1/users/webhooks/{id}/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    found = await request.app[WEBHOOK_SERVICE].deliveries(
        require_user(request), request.match_info["id"]
    )
    attempts = [item for delivery in found for item in _attempts(delivery)]
    attempts.sort(key=lambda item: item.attributes.time, reverse=True)
    return json_response(
        JsonApiDocument[list[DeliveryResource]](data=attempts), content_type=JSONAPI_CONTENT_TYPE
    )
