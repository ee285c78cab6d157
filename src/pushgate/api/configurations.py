"""`/api/v2/integrations/{integrationKey}[/{id}]`: LaunchDarkly's audit log subscriptions API.

Paths, parameter names and operation ids are LaunchDarkly's (`getSubscriptions`, ...), so a
client generated from either description calls pushgate the same way.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from pushgate import configurations
from pushgate.api import shapes
from pushgate.api.deps import Reader, RuntimeDep, Writer, json_body
from pushgate.api.openapi import AUTHENTICATED, answers, request_body
from pushgate.configurations import configuration_json, error_json, open_config
from pushgate.limits import MAX_ROW_ID
from pushgate.replay import parse_window, replay
from pushgate.validation import validate

TAG = "Integration audit log subscriptions"
router = APIRouter(prefix="/api/v2/integrations", tags=[TAG])

# Error-log page size bounds.
MAX_PAGE = 100
# What every call here may answer: reader calls, plus an unknown key or id; writer calls add 403.
READ = AUTHENTICATED | {404}
WRITE = READ | {403}
IntegrationKey = Annotated[
    str, Path(alias="integrationKey", description="The integration key, e.g. `datadog`")
]
ConfigurationId = Annotated[str, Path(alias="id", description="The configuration's `_id`")]
_WEBHOOK_CONFIG = {"url": "https://example.com/hooks/pushgate"}
_VALIDATION_BODY = request_body(
    shapes.ValidationPost,
    description="The config to send the test event with (for `webhook`, as here)",
    example={"config": _WEBHOOK_CONFIG},
)


@router.get(
    "/{integrationKey}",
    dependencies=[Reader],
    operation_id="getSubscriptions",
    summary="List the configurations of an integration",
    response_model=None,
    responses=answers(200, shapes.Integrations, "The configurations, with status", errors=READ),
)
async def list_configurations(integration_key: IntegrationKey, rt: RuntimeDep) -> dict[str, Any]:
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


@router.post(
    "/{integrationKey}",
    dependencies=[Writer],
    status_code=201,
    operation_id="createSubscription",
    summary="Create a configuration",
    response_model=None,
    responses=answers(201, shapes.Integration, "The new configuration", errors=WRITE | {400, 413}),
    openapi_extra=request_body(
        shapes.SubscriptionPost,
        description="LaunchDarkly's `SubscriptionPost`; `config` holds the integration's fields",
        example={
            "name": "Production flag changes",
            "config": _WEBHOOK_CONFIG,
            "on": True,
            "tags": ["ops"],
            "statements": [
                {"effect": "allow", "resources": ["proj/*:env/production:flag/*"], "actions": ["*"]}
            ],
        },
    ),
)
async def create_configuration(
    integration_key: IntegrationKey, request: Request, rt: RuntimeDep
) -> JSONResponse:
    """Create a configuration from a LaunchDarkly `SubscriptionPost` body."""
    rt.catalog.get(integration_key)
    row = await configurations.create(
        rt.services, integration_key, await json_body(request), now=rt.clock()
    )
    return JSONResponse(configuration_json(rt.services, row), status_code=201)


@router.post(
    "/{integrationKey}/validate",
    dependencies=[Writer],
    operation_id="validateConfig",
    summary="Send the test event with a config that is not saved",
    response_model=None,
    responses=answers(
        200, shapes.ValidationReport, "What the test event came to", errors=WRITE | {400, 413}
    ),
    openapi_extra=_VALIDATION_BODY,
)
async def validate_unsaved(
    integration_key: IntegrationKey, request: Request, rt: RuntimeDep
) -> dict[str, Any]:
    """Send the test event with a config that is not saved: body `{"config": {...}}`."""
    integration = rt.catalog.get(integration_key)
    body = await json_body(request)
    raw = body.get("config") if isinstance(body, dict) else None
    config = integration.parse_config(raw)
    report = await validate(rt.engine, integration, config, rt.clock)
    return report.to_json()


@router.get(
    "/{integrationKey}/{id}",
    dependencies=[Reader],
    operation_id="getSubscriptionByID",
    summary="Get a configuration",
    response_model=None,
    responses=answers(200, shapes.Integration, "The configuration, with status", errors=READ),
)
async def get_configuration(
    integration_key: IntegrationKey, configuration_id: ConfigurationId, rt: RuntimeDep
) -> dict[str, Any]:
    """One configuration with `_status`."""
    rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    return configuration_json(rt.services, row)


@router.patch(
    "/{integrationKey}/{id}",
    dependencies=[Writer],
    operation_id="updateSubscription",
    summary="Change a configuration with a JSON Patch",
    response_model=None,
    responses=answers(
        200, shapes.Integration, "The changed configuration", errors=WRITE | {400, 409, 413}
    ),
    openapi_extra=request_body(
        shapes.PatchOperation,
        array=True,
        description="RFC 6902 operations on `/name`, `/on`, `/tags`, `/config`, `/statements`",
        example=[{"op": "replace", "path": "/on", "value": False}],
    ),
)
async def patch_configuration(
    integration_key: IntegrationKey,
    configuration_id: ConfigurationId,
    request: Request,
    rt: RuntimeDep,
) -> dict[str, Any]:
    """Apply a JSON Patch (RFC 6902)."""
    rt.catalog.get(integration_key)
    row = await configurations.patch(
        rt.services, integration_key, configuration_id, await json_body(request), now=rt.clock()
    )
    return configuration_json(rt.services, row)


@router.delete(
    "/{integrationKey}/{id}",
    dependencies=[Writer],
    status_code=204,
    operation_id="deleteSubscription",
    summary="Delete a configuration",
    response_model=None,
    responses=answers(204, None, "Deleted, with its pending deliveries", errors=WRITE),
)
async def delete_configuration(
    integration_key: IntegrationKey, configuration_id: ConfigurationId, rt: RuntimeDep
) -> Response:
    """Delete a configuration, its pending deliveries, status and error log."""
    rt.catalog.get(integration_key)
    await rt.store.configurations.delete(integration_key, configuration_id)
    return Response(status_code=204)


@router.post(
    "/{integrationKey}/{id}/validate",
    dependencies=[Writer],
    operation_id="validateSubscription",
    summary="Send the test event to a configuration",
    response_model=None,
    responses=answers(
        200, shapes.ValidationReport, "What the test event came to", errors=WRITE | {400, 413}
    ),
    openapi_extra={
        **_VALIDATION_BODY,
        "requestBody": {
            **_VALIDATION_BODY["requestBody"],
            "required": False,
            "description": "Optional: unsaved edits; masked secrets keep their saved values",
        },
    },
)
async def validate_saved(
    integration_key: IntegrationKey,
    configuration_id: ConfigurationId,
    request: Request,
    rt: RuntimeDep,
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


@router.post(
    "/{integrationKey}/{id}/replay",
    dependencies=[Writer],
    status_code=202,
    operation_id="replaySubscription",
    summary="Queue a configuration's failed deliveries again",
    response_model=None,
    responses=answers(202, shapes.ReplayResult, "Queued", errors=WRITE | {400, 413}),
    openapi_extra=request_body(
        shapes.ReplayPost,
        required=False,
        description="Optional: a window of event time, or a dry run",
        example={"dryRun": True},
    ),
)
async def replay_failed(
    integration_key: IntegrationKey,
    configuration_id: ConfigurationId,
    request: Request,
    rt: RuntimeDep,
) -> JSONResponse:
    """Queue the configuration's failed deliveries again: optional body `{"since", "until",
    "dryRun"}` (event time, Unix ms). Answers `{"matched", "queued"}`."""
    row = await rt.store.configurations.get(integration_key, configuration_id)
    body = await json_body(request) if (await request.body()).strip() else None
    result = await replay(rt.store, row.id, parse_window(body), now=rt.clock())
    if result.queued:
        rt.wake_worker()
    return JSONResponse({"matched": result.matched, "queued": result.queued}, status_code=202)


@router.get(
    "/{integrationKey}/{id}/errors",
    dependencies=[Reader],
    operation_id="getSubscriptionErrors",
    summary="Read a configuration's error log",
    response_model=None,
    responses=answers(200, shapes.ErrorLog, "A page of the error log", errors=READ | {400}),
)
async def error_log(
    integration_key: IntegrationKey,
    configuration_id: ConfigurationId,
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
