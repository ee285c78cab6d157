"""Health, readiness and Prometheus metrics (no authentication: no data in them)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pushgate.api.deps import RuntimeDep

router = APIRouter()


@router.get("/healthz")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def ready(rt: RuntimeDep) -> JSONResponse:
    """The database answers."""
    try:
        await rt.store.ping()
    except Exception as error:  # any failure means "not ready", with the reason
        return JSONResponse(
            {"status": "unavailable", "reason": type(error).__name__}, status_code=503
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus exposition."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
