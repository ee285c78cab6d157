"""Health, readiness and Prometheus metrics (no authentication: no data in them)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pushgate.api import shapes
from pushgate.api.deps import RuntimeDep
from pushgate.api.openapi import answers

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
    try:
        await rt.store.ping()
    except Exception as error:  # any failure means "not ready", with the reason
        return JSONResponse(
            {"status": "unavailable", "reason": type(error).__name__}, status_code=503
        )
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    operation_id="getMetrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: _PROMETHEUS},
)
async def metrics() -> Response:
    """Prometheus exposition."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
