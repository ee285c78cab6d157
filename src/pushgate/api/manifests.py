"""`GET /api/v2/integration-manifests`: the catalog and each integration's form."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pushgate.api import shapes
from pushgate.api.deps import Reader, RuntimeDep
from pushgate.api.openapi import AUTHENTICATED, answers

router = APIRouter(prefix="/api/v2", tags=["Catalog"])


@router.get(
    "/integration-manifests",
    dependencies=[Reader],
    operation_id="getIntegrationManifests",
    summary="List the integrations this install knows",
    response_model=None,
    responses=answers(200, shapes.Manifests, "The catalog", errors=AUTHENTICATED),
)
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
