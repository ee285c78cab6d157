"""`POST /api/v2/events`: accept one audit-log entry or a batch; 202 once committed.

The route producers hit most, once per change: it is served by a lean Starlette route
(`intake`), placed before FastAPI's routes, that skips FastAPI's dependency machinery (in a
profile of single-event POSTs it cost more than the rest of the request). The FastAPI route
below describes the same operation in the OpenAPI document and does the same, through the
same `accept`, if it is ever reached.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.routing import Route

from pushgate.api import shapes
from pushgate.api.deps import RuntimeDep, Writer, authorize, json_body
from pushgate.api.openapi import AUTHENTICATED, answers
from pushgate.domain import Role
from pushgate.metrics import EVENTS
from pushgate.runtime import Runtime

PATH = "/api/v2/events"
router = APIRouter(tags=["Events"])


async def accept(request: Request, rt: Runtime) -> JSONResponse:
    """Commit the request's events and their deliveries, then answer 202."""
    result = await rt.ingestor.ingest(
        await json_body(request), now=rt.clock(), max_event_bytes=rt.settings.event_size_limit
    )
    EVENTS.inc(len(result.accepted))
    if result.deliveries:
        rt.wake_worker()
    return JSONResponse(
        {"ids": result.ids, "accepted": result.accepted, "deliveries": result.deliveries},
        status_code=202,
    )


# Described here; the body is read and checked by `accept` itself, as everywhere.
@router.post(
    PATH,
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
    return await accept(request, rt)


async def _intake(request: Request) -> JSONResponse:
    # FastAPI's router names the matched route in the scope only for its own routes; the
    # request metrics label by it (middleware.py), so this one names itself.
    request.scope["route"] = intake
    rt: Runtime = request.app.state.runtime
    await authorize(request, rt, Role.WRITER)
    return await accept(request, rt)


intake = Route(PATH, _intake, methods=["POST"], include_in_schema=False)
