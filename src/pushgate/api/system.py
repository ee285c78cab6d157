"""Health, readiness and Prometheus metrics (no authentication: no data in them)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from pushgate.api import shapes
from pushgate.api.deps import RuntimeDep
from pushgate.api.openapi import answers
from pushgate.metrics import exposition

router = APIRouter(tags=["Operations"])
_PROMETHEUS = {
    "description": "Prometheus text exposition",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}


@router.get(
    "/healthz",
    operation_id="getLiveness",
    summary="Whether the process is up",
    response_model=None,
    responses=answers(200, shapes.Liveness, "Up", errors=()),
)
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="getReadiness",
    summary="Whether the database answers",
    response_model=None,
    responses={
        200: {"model": shapes.Readiness, "description": "Ready"},
        503: {"model": shapes.Readiness, "description": "The database does not answer"},
    },
)
async def ready(rt: RuntimeDep) -> JSONResponse:
    """The database answers."""
    reason = await rt.unready()
    if reason is not None:
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    operation_id="getMetrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: _PROMETHEUS},
)
async def metrics(rt: RuntimeDep) -> Response:
    """Prometheus exposition: this process's counters and the database's backlog gauges."""
    return Response(await exposition(rt.gauges), media_type=CONTENT_TYPE_LATEST)
