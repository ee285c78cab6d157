"""`POST /api/v2/events`: accept one audit-log entry or a batch; 202 once committed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pushgate.api.deps import RuntimeDep, Writer, json_body
from pushgate.ingest import ingest
from pushgate.metrics import EVENTS

router = APIRouter(prefix="/api/v2")


@router.post("/events", dependencies=[Writer], status_code=202)
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
