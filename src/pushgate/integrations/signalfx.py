"""Splunk Observability Cloud (SignalFx): custom events through the ingest API.

`POST https://ingest.{realm}.signalfx.com/v2/event`; auth is the header
`X-SF-Token: {accessToken}` (an org access token with the INGEST scope). The body is a JSON
array holding one event.

Dimensions and properties are used as the product means them. Dimensions are what charts filter
and group event markers by, so they hold a few low-cardinality keys: `source`, `kind`,
`action`, `project_key`, `environment_key` and `<kind>_key` (e.g. `flag_key`). Everything a
person reads when opening the marker (the sentence, who, the comment, the link, names) goes
into properties.

Category: `USER_DEFINED`, which is what Splunk Observability Cloud calls events sent by another
system ("custom events") and how its event feed and chart overlays list them; `AUDIT` is left to
the product's own audit trail. The event type is `EVENT_TYPE` for every event, so one chart
overlay shows all changes and the `kind` dimension narrows them.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

from pushgate.events import EventContext
from pushgate.integrations.base import (
    JSON_HEADERS,
    Endpoints,
    Integration,
    IntegrationConfig,
    OutboundRequest,
)

EVENT_TYPE = "pushgate_change"
CATEGORY = "USER_DEFINED"
SOURCE = "pushgate"
# The longest dimension value the ingest API takes.
DIMENSION_VALUE_LIMIT = 256
# Long property text is cut: the marker's tooltip is not a document viewer.
PROPERTY_TEXT_LIMIT = 1_000
# Realms are lowercase letters then digits: us0, us1, us2, eu0, eu1, eu2, jp0, au0, sg0...
_REALM = re.compile(r"[a-z]{2,4}[0-9]{1,3}")
# A dimension name starts with a letter and holds letters, digits, `_` and `-`.
_DIMENSION_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class SignalFxConfig(IntegrationConfig):
    """An org access token and the realm of the organization."""

    access_token: SecretStr = Field(
        alias="accessToken",
        title="Access token",
        description=(
            "An org access token with the INGEST scope (Settings > Access Tokens in Splunk "
            "Observability Cloud)."
        ),
    )
    realm: str = Field(
        title="Realm",
        description=(
            "The realm of your organization, shown on your profile page (e.g. us0, us1, eu0). "
            "Events go to https://ingest.<realm>.signalfx.com."
        ),
        json_schema_extra={"placeholder": "us1"},
    )

    @field_validator("realm", mode="before")
    @classmethod
    def _normalise_realm(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("realm")
    @classmethod
    def _check_realm(cls, value: str) -> str:
        if not _REALM.fullmatch(value):
            raise ValueError("must be a realm name such as us0, us1 or eu0")
        return value


class SignalFx(Integration[SignalFxConfig]):
    """Each event becomes one custom event, to overlay on charts."""

    key: ClassVar[str] = "signalfx"
    name: ClassVar[str] = "Splunk Observability Cloud"
    description: ClassVar[str] = (
        "Send each change as a custom event to Splunk Observability Cloud (SignalFx)."
    )
    config_model = SignalFxConfig
    auth_hint: ClassVar[str] = (
        "Splunk Observability Cloud refused the token: check accessToken (an org access token "
        "with the INGEST scope) and that realm is the realm of that organization."
    )

    def build_request(
        self, event: EventContext, config: SignalFxConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        body = [
            {
                "eventType": EVENT_TYPE,
                "category": CATEGORY,
                "dimensions": _dimensions(event),
                "properties": _properties(event),
                "timestamp": event.date_ms,
            }
        ]
        base = endpoints.base_url(self.key, f"https://ingest.{config.realm}.signalfx.com")
        headers = {**JSON_HEADERS, "X-SF-Token": config.access_token.get_secret_value()}
        return OutboundRequest(
            "POST", f"{base}/v2/event", headers, json.dumps(body, separators=(",", ":")).encode()
        )


def _dimensions(event: EventContext) -> dict[str, str]:
    """Few, stable values: what charts filter event markers by."""
    dimensions = {"source": SOURCE, "kind": event.kind}
    if event.action:
        dimensions["action"] = event.action
    if event.project is not None:
        dimensions["project_key"] = event.project.key
        if event.project.environment is not None:
            dimensions["environment_key"] = event.project.environment.key
    if event.key and event.kind not in ("project", "environment"):
        dimensions[_dimension_name(f"{event.kind}_key")] = event.key
    return {name: value[:DIMENSION_VALUE_LIMIT] for name, value in dimensions.items()}


def _dimension_name(name: str) -> str:
    safe = _DIMENSION_UNSAFE.sub("_", name)
    return safe if safe[:1].isalpha() else "resource_key"


def _properties(event: EventContext) -> dict[str, str]:
    """What a person reads on the marker: the sentence, who, why, where (by name), the link."""
    properties = {"message": event.title, "name": event.name, "event_id": event.id}
    if event.details:
        properties["details"] = event.details
    if event.member is not None:
        properties["user"] = event.member.display_name
        if event.member.email:
            properties["user_email"] = event.member.email
    if event.comment:
        properties["comment"] = event.comment
    if event.project is not None:
        properties["project"] = event.project.name
        if event.project.environment is not None:
            properties["environment"] = event.project.environment.name
    if event.url:
        properties["url"] = event.url
    return {name: _clip(value) for name, value in properties.items()}


def _clip(text: str) -> str:
    if len(text) <= PROPERTY_TEXT_LIMIT:
        return text
    return text[: PROPERTY_TEXT_LIMIT - 1] + "…"
