"""`/api/v2/integrations/{integrationKey}[/{id}]`: LaunchDarkly's audit log subscriptions API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from pushgate import configurations
from pushgate.api.deps import Reader, RuntimeDep, Writer, json_body
from pushgate.configurations import configuration_json, error_json, open_config
from pushgate.limits import MAX_ROW_ID
from pushgate.replay import parse_window, replay
from pushgate.validation import validate

router = APIRouter(prefix="/api/v2/integrations")

# Error-log page size bounds.
MAX_PAGE = 100


@router.get("/{integration_key}", dependencies=[Reader])
async def list_configurations(integration_key: str, rt: RuntimeDep) -> dict[str, Any]:
    """Every configuration of one integration, with `_status`."""
    rt.catalog.get(integration_key)
    rows = await rt.store.configurations.all(integration_key)
    return {
        "_links": {
            "self": {"href": f"/api/v2/integrations/{integration_key}", "type": "application/json"}
        },
        "items": [configuration_json(rt.services, row) for row in rows],
        "key": integration_key,
    }


@router.post("/{integration_key}", dependencies=[Writer], status_code=201)
async def create_configuration(
    integration_key: str, request: Request, rt: RuntimeDep
) -> JSONResponse:
    """Create a configuration from a LaunchDarkly `SubscriptionPost` body."""
    rt.catalog.get(integration_key)
    row = await configurations.create(
        rt.services, integration_key, await json_body(request), now=rt.clock()
    )
    return JSONResponse(configuration_json(rt.services, row), status_code=201)


@router.post("/{integration_key}/validate", dependencies=[Writer])
async def validate_unsaved(
    integration_key: str, request: Request, rt: RuntimeDep
) -> dict[str, Any]:
    """Send the test event with a config that is not saved: body `{"config": {...}}`."""
    integration = rt.catalog.get(integration_key)
    body = await json_body(request)
    raw = body.get("config") if isinstance(body, dict) else None
    config = integration.parse_config(raw)
    report = await validate(rt.engine, integration, config, rt.clock)
    return report.to_json()


@router.get("/{integration_key}/{configuration_id}", dependencies=[Reader])
async def get_configuration(
    integration_key: str, configuration_id: str, rt: RuntimeDep
) -> dict[str, Any]:
    """One configuration with `_status`."""
    rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    return configuration_json(rt.services, row)


@router.patch("/{integration_key}/{configuration_id}", dependencies=[Writer])
async def patch_configuration(
    integration_key: str, configuration_id: str, request: Request, rt: RuntimeDep
) -> dict[str, Any]:
    """Apply a JSON Patch (RFC 6902)."""
    rt.catalog.get(integration_key)
    row = await configurations.patch(
        rt.services, integration_key, configuration_id, await json_body(request), now=rt.clock()
    )
    return configuration_json(rt.services, row)


@router.delete("/{integration_key}/{configuration_id}", dependencies=[Writer], status_code=204)
async def delete_configuration(
    integration_key: str, configuration_id: str, rt: RuntimeDep
) -> Response:
    """Delete a configuration, its pending deliveries, status and error log."""
    rt.catalog.get(integration_key)
    await rt.store.configurations.delete(integration_key, configuration_id)
    return Response(status_code=204)


@router.post("/{integration_key}/{configuration_id}/validate", dependencies=[Writer])
async def validate_saved(
    integration_key: str, configuration_id: str, request: Request, rt: RuntimeDep
) -> dict[str, Any]:
    """Send the test event with the saved config, or with an optional `{"config": {...}}`
    whose masked secrets keep their saved values. Changes no status counter."""
    integration = rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    stored = open_config(rt.services, row)
    body = await request.body()
    if body.strip():
        raw = await json_body(request)
        override = raw.get("config") if isinstance(raw, dict) else None
        config = (
            integration.parse_config(override, stored=stored) if override is not None else stored
        )
    else:
        config = stored
    report = await validate(rt.engine, integration, config, rt.clock)
    return report.to_json()


@router.post("/{integration_key}/{configuration_id}/replay", dependencies=[Writer], status_code=202)
async def replay_failed(
    integration_key: str, configuration_id: str, request: Request, rt: RuntimeDep
) -> JSONResponse:
    """Queue the configuration's failed deliveries again: optional body `{"since", "until",
    "dryRun"}` (event time, Unix ms). Answers `{"matched", "queued"}`."""
    row = await rt.store.configurations.get(integration_key, configuration_id)
    body = await json_body(request) if (await request.body()).strip() else None
    result = await replay(rt.store, row.id, parse_window(body), now=rt.clock())
    if result.queued:
        rt.wake_worker()
    return JSONResponse({"matched": result.matched, "queued": result.queued}, status_code=202)


@router.get("/{integration_key}/{configuration_id}/errors", dependencies=[Reader])
async def error_log(
    integration_key: str,
    configuration_id: str,
    rt: RuntimeDep,
    limit: int = Query(20, ge=1, le=MAX_PAGE),
    before: int | None = Query(
        None, ge=1, le=MAX_ROW_ID, description="id of the last entry of the previous page"
    ),
) -> dict[str, Any]:
    """The configuration's error log, newest first, paged with `before`."""
    rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    entries = await rt.store.configurations.errors(row.id, limit=limit, before=before)
    base = f"/api/v2/integrations/{integration_key}/{configuration_id}/errors"
    links: dict[str, Any] = {"self": {"href": base, "type": "application/json"}}
    if len(entries) == limit:
        links["next"] = {
            "href": f"{base}?limit={limit}&before={entries[-1].id}",
            "type": "application/json",
        }
    return {
        "_links": links,
        "items": [error_json(entry) for entry in entries],
        "totalCount": row.status.error_count,
    }
