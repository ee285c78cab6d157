"""`/api/v2/integrations/{integrationKey}/{id}/attempts`: a configuration's attempt log.

Every recent attempt, successes too (up to `PUSHGATE_ATTEMPT_LOG_SIZE` per configuration),
newest first, filtered and paged with `before`; `expand=detail` adds the request and response
of each (secrets masked when they were kept, never here).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query

from pushgate.api import shapes
from pushgate.api.configurations import MAX_PAGE, READ, TAG, ConfigurationId, IntegrationKey
from pushgate.api.deps import Reader, RuntimeDep
from pushgate.api.openapi import answers
from pushgate.limits import MAX_ROW_ID
from pushgate.store.attempts import AttemptFilter, AttemptRow

router = APIRouter(prefix="/api/v2/integrations", tags=[TAG])
# The latest time a filter may name (year 9999): keeps every bound inside a BIGINT.
MAX_TIME = 253_402_300_799_999
Time = Annotated[int | None, Query(ge=0, le=MAX_TIME, description="Unix milliseconds, inclusive")]


def attempt_json(entry: AttemptRow) -> dict[str, Any]:
    """One attempt as the API answers it (absent fields: unknown or not asked for)."""
    out: dict[str, Any] = {
        "id": entry.id,
        "timestamp": entry.at,
        "eventId": entry.event_id,
        "attempt": entry.attempt,
        "outcome": entry.outcome,
        "durationMs": entry.duration_ms,
        "willRetry": entry.will_retry,
    }
    if entry.status_code is not None:
        out["statusCode"] = entry.status_code
    if entry.next_at is not None:
        out["nextAt"] = entry.next_at
    if entry.error is not None:
        out["error"] = entry.error
    if entry.hint is not None:
        out["hint"] = entry.hint
    out.update(entry.exchange())
    return out


@router.get(
    "/{integrationKey}/{id}/attempts",
    dependencies=[Reader],
    operation_id="getSubscriptionAttempts",
    summary="Read a configuration's recent attempts, successes and failures",
    response_model=None,
    responses=answers(200, shapes.AttemptLog, "A page of attempts", errors=READ | {400}),
)
async def attempt_log(
    integration_key: IntegrationKey,
    configuration_id: ConfigurationId,
    rt: RuntimeDep,
    limit: int = Query(20, ge=1, le=MAX_PAGE),
    before: int | None = Query(
        None, ge=1, le=MAX_ROW_ID, description="id of the last attempt of the previous page"
    ),
    outcome: Literal["success", "failure"] | None = Query(None),
    status_code: int | None = Query(None, alias="statusCode", ge=100, le=599),
    event_id: str | None = Query(None, alias="eventId", min_length=1, max_length=64),
    since: Time = None,
    until: Time = None,
    expand: Literal["detail"] | None = Query(
        None, description="`detail`: each attempt's request and response"
    ),
) -> dict[str, Any]:
    """The configuration's attempts, newest first, filtered, paged with `before`."""
    rt.catalog.get(integration_key)
    row = await rt.store.configurations.get(integration_key, configuration_id)
    wanted = AttemptFilter(outcome, status_code, event_id, since, until)
    entries = await rt.store.configurations.attempts(
        row.id, wanted, limit=limit, before=before, detail=expand is not None
    )
    asked = {
        "outcome": outcome,
        "statusCode": status_code,
        "eventId": event_id,
        "since": since,
        "until": until,
        "expand": expand,
    }
    query = {name: value for name, value in asked.items() if value is not None}
    base = f"/api/v2/integrations/{integration_key}/{configuration_id}/attempts"
    links: dict[str, Any] = {
        "self": {
            "href": f"{base}?{urlencode(query)}" if query else base,
            "type": "application/json",
        }
    }
    if len(entries) == limit:
        following = urlencode({**query, "limit": limit, "before": entries[-1].id})
        links["next"] = {"href": f"{base}?{following}", "type": "application/json"}
    return {"_links": links, "items": [attempt_json(entry) for entry in entries]}
