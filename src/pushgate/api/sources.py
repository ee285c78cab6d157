"""Event sources: `/api/v2/sources[/{id}]` (admin), and `POST /ingest/{id}` for their senders.

An ingest request carries no token: its signature is its credential (`sources.authenticate`).
Once that holds, the body goes through the very function `POST /api/v2/events` calls
(`ingest.ingest`: the same validation, idempotent on `_id`, 202 once committed).
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from pushgate import sources
from pushgate.api import shapes
from pushgate.api.deps import Admin, RuntimeDep, json_body
from pushgate.api.openapi import AUTHENTICATED, answers, request_body
from pushgate.errors import Unauthorized
from pushgate.metrics import EVENTS
from pushgate.runtime import Runtime

log = structlog.get_logger("pushgate.sources")
TAG = "Sources"
router = APIRouter(prefix="/api/v2/sources", dependencies=[Admin], tags=[TAG])
ingest_router = APIRouter(tags=[TAG])
ADMIN = AUTHENTICATED | {403}
SourceId = Annotated[str, Path(alias="id", description="The source's `_id`")]
_SIGNATURE_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }
    for name, description in (
        (sources.LD_SIGNATURE, "`launchdarkly-webhook`: hex HMAC-SHA256 of the body"),
        (sources.WEBHOOK_ID, "`standard-webhooks`: the message id"),
        (sources.WEBHOOK_TIMESTAMP, "`standard-webhooks`: Unix seconds, within 5 minutes"),
        (sources.WEBHOOK_SIGNATURE, "`standard-webhooks`: `v1,<base64>` signatures"),
    )
]


def base_url(request: Request, rt: Runtime) -> str:
    """What ingest URLs start with: PUSHGATE_PUBLIC_URL, else the address the request came to."""
    return rt.settings.public_url or str(request.base_url)


@router.get(
    "",
    operation_id="getSources",
    summary="List the event sources",
    response_model=None,
    responses=answers(200, shapes.Sources, "Every source, secrets masked", errors=ADMIN),
)
async def list_sources(request: Request, rt: RuntimeDep) -> dict[str, Any]:
    """Every source with what it received; secrets masked."""
    base = base_url(request, rt)
    return {
        "items": [sources.source_json(row, base_url=base) for row in await rt.store.sources.all()]
    }


@router.post(
    "",
    status_code=201,
    operation_id="createSource",
    summary="Create an event source",
    response_model=None,
    responses=answers(
        201,
        shapes.Source,
        "The new source, with its secret (shown this once) and its ingest URL",
        errors=ADMIN | {400, 413},
    ),
    openapi_extra=request_body(
        shapes.SourcePost,
        description="Its name and kind; leave `secret` out to have one generated",
        example={"name": "LaunchDarkly production", "kind": "launchdarkly-webhook"},
    ),
)
async def create_source(request: Request, rt: RuntimeDep) -> JSONResponse:
    """Create a source; the answer holds its secret, which is never shown again."""
    row, secret = await sources.create(
        rt.store, rt.services.box, await json_body(request), now=rt.clock()
    )
    log.info("source.created", source=row.id, kind=row.kind.value)
    body = sources.source_json(row, base_url=base_url(request, rt), secret=secret)
    return JSONResponse(body, status_code=201)


@router.get(
    "/{id}",
    operation_id="getSource",
    summary="Get an event source",
    response_model=None,
    responses=answers(200, shapes.Source, "The source, its secret masked", errors=ADMIN | {404}),
)
async def get_source(source_id: SourceId, request: Request, rt: RuntimeDep) -> dict[str, Any]:
    """One source with what it received."""
    row = await rt.store.sources.get(source_id)
    return sources.source_json(row, base_url=base_url(request, rt))


@router.delete(
    "/{id}",
    status_code=204,
    operation_id="deleteSource",
    summary="Delete an event source",
    response_model=None,
    responses=answers(204, None, "Deleted: its URL stops taking events", errors=ADMIN | {404}),
)
async def delete_source(source_id: SourceId, rt: RuntimeDep) -> Response:
    """Delete a source; the events it brought in stay."""
    await rt.store.sources.delete(source_id)
    log.info("source.deleted", source=source_id)
    return Response(status_code=204)


@ingest_router.post(
    "/ingest/{id}",
    status_code=202,
    operation_id="postSourceEvents",
    summary="Send change events to a source, signed",
    description=(
        "For LaunchDarkly's webhook integration (`X-LD-Signature`) or any Standard Webhooks "
        "sender; no access token. The body is what `POST /api/v2/events` takes."
    ),
    response_model=None,
    responses=answers(
        202,
        shapes.EventsAccepted,
        "Committed with their deliveries; an `_id` seen before changes nothing",
        errors={400, 401, 404, 413, 500, 503},
    ),
    openapi_extra={**shapes.EVENTS_BODY, "parameters": _SIGNATURE_HEADERS},
)
async def receive(source_id: SourceId, request: Request, rt: RuntimeDep) -> JSONResponse:
    """Verify the signature, then ingest exactly as `POST /api/v2/events` does."""
    now = rt.clock()
    try:
        row = await sources.authenticate(
            rt.store, rt.services.box, source_id, request.headers, await request.body(), now_ms=now
        )
    except Unauthorized as refused:
        log.warning("source.refused", source=source_id, reason=refused.message)
        raise
    body = sources.with_message_id(row.kind, await json_body(request), request.headers)
    result = await rt.ingestor.ingest(body, now=now, max_event_bytes=rt.settings.event_size_limit)
    EVENTS.inc(len(result.accepted))
    if result.deliveries:
        rt.wake_worker()
    await rt.store.sources.received(
        row.id, events=len(result.accepted), last_event_id=result.ids[-1], now=now
    )
    log.info("source.received", source=row.id, events=len(result.ids), new=len(result.accepted))
    return JSONResponse(
        {"ids": result.ids, "accepted": result.accepted, "deliveries": result.deliveries},
        status_code=202,
    )
