"""`GET /api/v2/integration-manifests`: the catalog and each integration's form."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pushgate.api.deps import Reader, RuntimeDep

router = APIRouter(prefix="/api/v2")


@router.get("/integration-manifests", dependencies=[Reader])
async def manifests(rt: RuntimeDep) -> dict[str, Any]:
    """Every integration: key, name, description, form fields and default policy."""
    return {
        "items": [
            {
                "key": integration.key,
                "name": integration.name,
                "description": integration.description,
                "formVariables": integration.form(),
                "defaultPolicy": [s.to_json() for s in integration.default_statements],
            }
            for integration in rt.catalog
        ]
    }
