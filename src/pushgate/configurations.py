"""Configurations as the API and the UI see them: validated, secrets sealed, LaunchDarkly JSON.

The API routers and the web UI both go through these functions, so a configuration is checked
the same way wherever it is made or changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonpatch

from pushgate.errors import Conflict, InvalidRequest
from pushgate.integrations import Catalog
from pushgate.integrations.base import Integration, IntegrationConfig, secret_fields
from pushgate.policy import parse_statements
from pushgate.sealing import SecretBox
from pushgate.store import ConfigurationRow, ErrorEntry, Status, Store

NAME_LIMIT = 256
# The top-level members a JSON Patch may touch, as in LaunchDarkly's API.
PATCHABLE = ("name", "on", "tags", "config", "statements")
_CREATE_KEYS = {"name", "on", "tags", "config", "statements", "url", "apiKey"}


@dataclass(frozen=True, slots=True)
class Services:
    """What configuration changes need: the catalog, the store and the secret box."""

    catalog: Catalog
    store: Store
    box: SecretBox


def open_config(services: Services, row: ConfigurationRow) -> IntegrationConfig:
    """The typed config of a stored configuration, secrets decrypted."""
    integration = services.catalog.get(row.integration_key)
    values = dict(row.config)
    if row.secrets:
        values.update(services.box.open(row.secrets))
    config: IntegrationConfig = integration.config_model.model_validate(values)
    return config


def _seal(
    services: Services, integration: Integration[Any], config: IntegrationConfig
) -> tuple[dict[str, Any], str | None]:
    everything = integration.dump_config(config, mask=False)
    hidden = {
        key: everything.pop(key)
        for key in secret_fields(integration.config_model)
        if key in everything
    }
    return everything, services.box.seal(hidden) if hidden else None


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("name: must be a non-empty string")
    if len(value) > NAME_LIMIT:
        raise InvalidRequest(f"name: must be at most {NAME_LIMIT} characters")
    return value.strip()


def _check_on(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest("on: must be true or false")
    return value


def _check_tags(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag for tag in value):
        raise InvalidRequest("tags: must be a list of non-empty strings")
    return list(dict.fromkeys(value))


async def create(
    services: Services, integration_key: str, body: object, *, now: int
) -> ConfigurationRow:
    """Validate a LaunchDarkly `SubscriptionPost` body and store the new configuration."""
    integration = services.catalog.get(integration_key)
    if not isinstance(body, Mapping):
        raise InvalidRequest("body: must be a JSON object")
    unknown = sorted(set(body) - _CREATE_KEYS)
    if unknown:
        raise InvalidRequest(f"{unknown[0]}: unknown field")
    if "name" not in body:
        raise InvalidRequest("name: required")
    if "config" not in body:
        raise InvalidRequest("config: required")
    config = integration.parse_config(body["config"])
    statements = (
        parse_statements(body["statements"])
        if body.get("statements") is not None
        else list(integration.default_statements)
    )
    public, sealed = _seal(services, integration, config)
    return await services.store.configurations.create(
        integration_key=integration_key,
        name=_check_name(body["name"]),
        on=_check_on(body.get("on", False)),
        tags=_check_tags(body.get("tags", [])),
        config=public,
        secrets=sealed,
        statements=[s.to_json() for s in statements],
        now=now,
    )


def patch_document(services: Services, row: ConfigurationRow) -> dict[str, Any]:
    """The document a JSON Patch applies to (secrets masked, as clients see it)."""
    integration = services.catalog.get(row.integration_key)
    return {
        "name": row.name,
        "on": row.on,
        "tags": list(row.tags),
        "config": integration.dump_config(open_config(services, row), mask=True),
        "statements": list(row.statements),
    }


async def patch(
    services: Services, integration_key: str, configuration_id: str, operations: object, *, now: int
) -> ConfigurationRow:
    """Apply an RFC 6902 JSON Patch to /name, /on, /tags, /config and /statements."""
    row = await services.store.configurations.get(integration_key, configuration_id)
    if not isinstance(operations, list) or not operations:
        raise InvalidRequest("body: must be a non-empty JSON Patch array")
    for index, operation in enumerate(operations):
        if not isinstance(operation, Mapping) or not isinstance(operation.get("path"), str):
            raise InvalidRequest(f"[{index}]: a patch operation needs 'op' and 'path'")
        top = operation["path"].split("/")[1] if operation["path"].startswith("/") else ""
        if top not in PATCHABLE:
            raise InvalidRequest(
                f"[{index}].path: {operation['path']!r} cannot be patched; "
                f"patchable: {', '.join('/' + p for p in PATCHABLE)}"
            )
    try:
        document = jsonpatch.apply_patch(patch_document(services, row), operations)
    except jsonpatch.JsonPatchTestFailed as error:
        raise Conflict(f"patch test failed: {error}") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise InvalidRequest(f"body: {error}") from None
    integration = services.catalog.get(integration_key)
    config = integration.parse_config(document.get("config"), stored=open_config(services, row))
    public, sealed = _seal(services, integration, config)
    return await services.store.configurations.update(
        row,
        now=now,
        name=_check_name(document.get("name")),
        on=_check_on(document.get("on")),
        tags=_check_tags(document.get("tags")),
        config=public,
        secrets=sealed,
        statements=[s.to_json() for s in parse_statements(document.get("statements"))],
    )


def error_json(entry: ErrorEntry) -> dict[str, Any]:
    """One error-log entry: LaunchDarkly's `{statusCode, responseBody, timestamp}` plus detail."""
    out: dict[str, Any] = {"timestamp": entry.timestamp}
    if entry.status_code is not None:
        out["statusCode"] = entry.status_code
    if entry.response_body is not None:
        out["responseBody"] = entry.response_body
    if entry.error is not None:
        out["error"] = entry.error
    if entry.hint is not None:
        out["hint"] = entry.hint
    out["eventId"] = entry.event_id
    out["attempt"] = entry.attempt
    out["willRetry"] = entry.will_retry
    out["id"] = entry.id
    return out


def status_json(status: Status) -> dict[str, Any]:
    """LaunchDarkly's `_status`: integer counters, millisecond timestamps, absent keys omitted."""
    out: dict[str, Any] = {"successCount": status.success_count, "errorCount": status.error_count}
    if status.last_success is not None:
        out["lastSuccess"] = status.last_success
    if status.last_error is not None:
        out["lastError"] = status.last_error
    out["errors"] = [error_json(entry) for entry in status.errors]
    return out


def configuration_json(services: Services, row: ConfigurationRow) -> dict[str, Any]:
    """A configuration as LaunchDarkly's `Integration` representation (secrets masked)."""
    integration = services.catalog.get(row.integration_key)
    return {
        "_links": {
            "self": {
                "href": f"/api/v2/integrations/{row.integration_key}/{row.id}",
                "type": "application/json",
            }
        },
        "_id": row.id,
        "kind": row.integration_key,
        "name": row.name,
        "config": integration.dump_config(open_config(services, row), mask=True),
        "statements": list(row.statements),
        "on": row.on,
        "tags": list(row.tags),
        "_status": status_json(row.status),
    }
