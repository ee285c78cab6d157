"""`POST /api/v2/events`: accept one audit-log entry or a batch; 202 once committed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pushgate.api import shapes
from pushgate.api.deps import RuntimeDep, Writer, json_body
from pushgate.api.openapi import AUTHENTICATED, answers
from pushgate.ingest import ingest
from pushgate.metrics import EVENTS

router = APIRouter(prefix="/api/v2", tags=["Events"])


# Described here; the route reads and checks the body itself (`ingest`), as before.
@router.post(
    "/events",
    dependencies=[Writer],
    status_code=202,
    operation_id="postEvents",
    summary="Send change events",
    response_model=None,
    responses=answers(
        202,
        shapes.EventsAccepted,
        "Committed with their deliveries; an `_id` seen before changes nothing",
        errors=AUTHENTICATED | {400, 403, 413},
    ),
    openapi_extra=shapes.EVENTS_BODY,
)
async def post_events(request: Request, rt: RuntimeDep) -> JSONResponse:
    """Commit the events and their deliveries, then answer. Idempotent on each entry's `_id`."""
    result = await ingest(
        rt.store,
        await json_body(request),
        now=rt.clock(),
        max_event_bytes=rt.settings.event_size_limit,
    )
    EVENTS.inc(len(result.accepted))
    if result.deliveries:
        rt.wake_worker()
    return JSONResponse(
        {"ids": result.ids, "accepted": result.accepted, "deliveries": result.deliveries},
        status_code=202,
    )
