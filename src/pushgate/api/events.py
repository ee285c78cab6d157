"""`POST /api/v2/events`: accept one audit-log entry or a batch; 202 once committed.

The route producers hit most, once per change. `intake_app` serves it as a bare ASGI app that
`middleware.Dispatch`, the innermost middleware, hands these requests to: behind the same
metrics, body limit, headers and failure middleware as every route, but without Starlette's
router and exception layers or FastAPI's dependency machinery, which in a profile of
single-event POSTs cost more than the rest of the request. The FastAPI route below describes
the operation in the OpenAPI document (and would do the same, through the same `accept`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from pushgate.api import shapes
from pushgate.api.deps import RuntimeDep, Writer, authorize, json_body, request_error_response
from pushgate.api.openapi import AUTHENTICATED, answers
from pushgate.domain import Role
from pushgate.errors import RequestError
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


async def intake_app(scope: Scope, receive: Receive, send: Send) -> None:
    """`POST /api/v2/events` as a bare ASGI app: a wrong request gets its `{"code","message"}`
    answer here; anything else that raises is the failure middleware's (503 or 500)."""
    # The request metrics label by the route in the scope (middleware.py), which no router
    # set here: it is this operation's FastAPI route.
    scope["route"] = ROUTE
    request = Request(scope, receive)
    rt: Runtime = request.app.state.runtime
    try:
        await authorize(request, rt, Role.WRITER)
        response = await accept(request, rt)
    except RequestError as error:
        response = request_error_response(error)
    await response(scope, receive, send)


ROUTE = next(route for route in router.routes if getattr(route, "path", None) == PATH)
