"""Configurations as the API and the UI see them: validated, secrets sealed, LaunchDarkly JSON.

The API routers and the web UI both go through these functions, so a configuration is checked
the same way wherever it is made or changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jsonpatch
import structlog

from pushgate.breaker import Breaker
from pushgate.domain import TURNED_OFF, HealthState
from pushgate.errors import Conflict, InvalidRequest
from pushgate.integrations import Catalog
from pushgate.integrations.base import SECRET_MASK, Integration, IntegrationConfig, secret_fields
from pushgate.limits import MAX_TAGS, NAME_LIMIT, TAG_LIMIT, check_text
from pushgate.outbound import OutboundPolicy
from pushgate.policy import parse_statements
from pushgate.sealing import SecretBox
from pushgate.store import ConfigurationRow, ErrorEntry, Status, Store

log = structlog.get_logger("pushgate.configurations")
# The top-level members a JSON Patch may touch, as in LaunchDarkly's API.
PATCHABLE = ("name", "on", "tags", "config", "statements")
_CREATE_KEYS = {"name", "on", "tags", "config", "statements", "url", "apiKey"}


@dataclass(frozen=True, slots=True)
class Services:
    """What configuration changes need: the catalog, the store, the secret box, and the
    outbound policy that URLs with a literal address must pass when they are saved."""

    catalog: Catalog
    store: Store
    box: SecretBox
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)


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


def _check_targets(
    services: Services, integration: Integration[Any], config: IntegrationConfig
) -> None:
    """Refuse a URL whose host is a literal address the outbound policy would refuse at
    delivery (names are judged when they resolve, at delivery)."""
    values = integration.dump_config(config, mask=False)
    for form_field in integration.form():
        value = values.get(form_field["key"])
        if form_field["type"] != "uri" or not isinstance(value, str):
            continue
        problem = services.outbound.host_problem(urlsplit(value).hostname or "")
        if problem is not None:
            raise InvalidRequest(
                f"config.{form_field['key']}: {problem}; an operator can allow a network with "
                "PUSHGATE_OUTBOUND_ALLOW"
            )


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("name: must be a non-empty string")
    return check_text(value, "name", limit=NAME_LIMIT).strip()


def _check_on(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest("on: must be true or false")
    return value


def _check_tags(value: object) -> list[str]:
    """At most `MAX_TAGS` tags of 1 to `TAG_LIMIT` characters; no commas (the UI separates
    tags with them), duplicates dropped."""
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag for tag in value):
        raise InvalidRequest("tags: must be a list of non-empty strings")
    tags = list(dict.fromkeys(value))
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"tags: at most {MAX_TAGS} tags, not {len(tags)}")
    for tag in tags:
        check_text(tag, "tags", limit=TAG_LIMIT, forbid=",")
    return tags


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
    _check_targets(services, integration, config)
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


async def seal_plain_secrets(services: Services, *, now: int) -> int:
    """Seal secret fields that older versions stored in the clear; returns how many rows.

    A field that became a secret (the Teams and webhook URLs) is still readable where it was
    stored in the clear (`open_config` reads both), and is moved into the sealed part here, at
    start-up. A configuration changed meanwhile by another process is left to that change.
    Nothing is sealed by a process whose key does not open what is sealed already: that would
    seal them with the wrong key.
    """
    rows = await services.store.configurations.all()
    for row in rows:
        if row.secrets is None:
            continue
        try:
            services.box.open(row.secrets)
        except ValueError:
            log.warning("configuration.secrets_not_sealed", reason="PUSHGATE_SECRET_KEY differs")
            return 0
    moved = 0
    for row in rows:
        if row.integration_key not in services.catalog:
            continue
        integration = services.catalog.get(row.integration_key)
        if not set(secret_fields(integration.config_model)) & set(row.config):
            continue
        public, sealed = _seal(services, integration, open_config(services, row))
        try:
            await services.store.configurations.update(row, now=now, config=public, secrets=sealed)
        except Conflict:
            continue
        moved += 1
    if moved:
        log.info("configuration.secrets_sealed", configurations=moved)
    return moved


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
    _check_targets(services, integration, config)
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


@dataclass(frozen=True, slots=True)
class HealthView:
    """A configuration's health as people see it: state, why, since when, until when."""

    state: HealthState
    pending: int
    reason: str | None = None
    since: int | None = None
    resumes_at: int | None = None


def health_state(on: bool, breaker: Breaker) -> HealthState:
    """The health state of a configuration that is `on` (or not) with this breaker."""
    if not on:
        return HealthState.OFF
    if breaker.paused_until is not None:
        return HealthState.PAUSED
    if breaker.failures:
        return HealthState.FAILING
    return HealthState.HEALTHY


def health_of(row: ConfigurationRow) -> HealthView:
    """The health a configuration is in, from its `on` flag and its breaker."""
    breaker, pending = row.health.breaker, row.health.pending
    state = health_state(row.on, breaker)
    if state is HealthState.OFF:
        reason = breaker.reason if breaker.off or breaker.reason else TURNED_OFF
        since = breaker.since if breaker.off or breaker.reason else None
        return HealthView(state, pending, reason, since)
    if state is HealthState.PAUSED:
        return HealthView(state, pending, breaker.reason, breaker.since, breaker.paused_until)
    if state is HealthState.FAILING:
        return HealthView(state, pending, breaker.reason, breaker.since)
    return HealthView(state, pending, since=breaker.since)


def health_json(row: ConfigurationRow) -> dict[str, Any]:
    """`_health`: `{"state", "reason", "since", "resumesAt", "pending"}`, absent keys omitted."""
    view = health_of(row)
    out: dict[str, Any] = {"state": view.state.value}
    for key, value in (
        ("reason", view.reason),
        ("since", view.since),
        ("resumesAt", view.resumes_at),
    ):
        if value is not None:
            out[key] = value
    out["pending"] = view.pending
    return out


def _masked_config(
    services: Services, integration: Integration[Any], row: ConfigurationRow
) -> dict[str, Any]:
    """The config as answers show it; secrets this process cannot open (another
    PUSHGATE_SECRET_KEY) are shown masked all the same, rather than failing the answer."""
    try:
        return integration.dump_config(open_config(services, row), mask=True)
    except ValueError:
        masked = dict.fromkeys(secret_fields(integration.config_model), SECRET_MASK)
        return {**row.config, **masked}


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
        "config": _masked_config(services, integration, row),
        "statements": list(row.statements),
        "on": row.on,
        "tags": list(row.tags),
        "_status": status_json(row.status),
        "_health": health_json(row),
    }
