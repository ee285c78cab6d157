"""New Relic One: APM deployment markers through the REST API v2.

`POST https://{domain}/v2/applications/{applicationId}/deployments.json` with `X-Api-Key`, body
`{"deployment": {revision, changelog, description, user, timestamp}}`; New Relic answers 201.
The marker shows on the application's APM charts and in its Deployments page: `description` is
the line people read (who changed what, where, and the comment), `changelog` holds the details
and the link, `user` who made the change.

New Relic's limits shape the fields: `revision` (the event id, so every change is its own
marker) at most 127 characters, `user` at most 31, `description` and `changelog` at most 65,535;
no 4-byte UTF-8 characters (emoji) anywhere; `timestamp` in UTC to the second, never before the
application's latest marker and never in the future.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from pushgate.errors import PermanentDeliveryError
from pushgate.events import EventContext
from pushgate.integrations.base import (
    JSON_HEADERS,
    Endpoints,
    InboundResponse,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    classify_status,
)

NewRelicDomain = Literal["api.newrelic.com", "api.eu.newrelic.com"]
# New Relic's documented character limits of deployment fields.
REVISION_LIMIT = 127
USER_LIMIT = 31
TEXT_LIMIT = 65_535
# New Relic refuses 4-byte UTF-8 characters (emoji, some CJK) in deployment text.
_OUTSIDE_BMP = re.compile("[\U00010000-\U0010ffff]")
_REPLACEMENT = "\ufffd"

APPLICATION_HINT = (
    "New Relic does not know this application for the API key: check applicationId (the "
    "numeric appId of the APM application) and domain (EU accounts use api.eu.newrelic.com)."
)
REFUSED_HINT = (
    "New Relic refused the deployment: it refuses a timestamp earlier than the application's "
    "latest deployment marker or in the future (check the clocks), and over-long fields."
)


class NewRelicConfig(IntegrationConfig):
    """New Relic API key, APM application id and region."""

    api_key: SecretStr = Field(
        alias="apiKey",
        title="API key",
        description=(
            "A New Relic user key (NRAK-…) or REST API key of the account that owns the "
            "application (API keys in the user menu)."
        ),
        json_schema_extra={"placeholder": "NRAK-…"},
    )
    application_id: str = Field(
        alias="applicationId",
        title="Application ID",
        description=(
            "The numeric id of the APM application (its metadata in APM & services shows it "
            "as appId)."
        ),
        json_schema_extra={"placeholder": "1234567890"},
    )
    domain: NewRelicDomain = Field(
        default="api.newrelic.com",
        title="API domain",
        description="api.eu.newrelic.com for accounts in the EU region, else api.newrelic.com.",
    )

    @field_validator("application_id")
    @classmethod
    def _check_application_id(cls, value: str) -> str:
        value = value.strip()
        if not value.isascii() or not value.isdigit():
            raise ValueError("must be the numeric application id, like 1234567890")
        return value


class NewRelic(Integration[NewRelicConfig]):
    """Each event becomes a deployment marker on a New Relic APM application."""

    key: ClassVar[str] = "new-relic-apm"
    name: ClassVar[str] = "New Relic One events"
    description: ClassVar[str] = "Mark changes as deployments on a New Relic APM application."
    config_model = NewRelicConfig
    auth_hint: ClassVar[str] = (
        "New Relic refused the API key: check apiKey (a user key or REST API key of the account "
        "that owns applicationId) and domain (EU accounts use api.eu.newrelic.com)."
    )

    def build_request(
        self, event: EventContext, config: NewRelicConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        deployment = {
            "revision": _clean(event.id, REVISION_LIMIT),
            "description": _clean(_description(event), TEXT_LIMIT),
            "changelog": _clean(_changelog(event), TEXT_LIMIT),
            "user": _clean(event.member.display_name if event.member else "pushgate", USER_LIMIT),
            "timestamp": _utc_seconds(event),
        }
        base = endpoints.base_url(self.key, f"https://{config.domain}")
        url = f"{base}/v2/applications/{config.application_id}/deployments.json"
        headers = {**JSON_HEADERS, "X-Api-Key": config.api_key.get_secret_value()}
        body = json.dumps({"deployment": deployment}).encode()
        return OutboundRequest("POST", url, headers, body)

    def classify(self, response: InboundResponse) -> None:
        """The common reading, with hints for an unknown application and refused markers."""
        try:
            classify_status(response, auth_hint=self.auth_hint)
        except PermanentDeliveryError as error:
            if response.status == 404:
                error.hint = APPLICATION_HINT
            elif response.status in (400, 409, 422):
                error.hint = REFUSED_HINT
            raise


def _description(event: EventContext) -> str:
    """The line shown with the marker: title, where, and the comment."""
    text = event.title
    if event.project:
        where = f"project {event.project.name}"
        if event.project.environment:
            where += f", environment {event.project.environment.name}"
        text += f" ({where})"
    if event.comment:
        text += f": {event.comment}"
    return text


def _changelog(event: EventContext) -> str:
    """What changed, in detail, and where to see it."""
    lines = [f"{event.kind} {event.key or event.name}: {', '.join(event.actions) or 'changed'}"]
    if event.details:
        lines.append(event.details)
    if event.comment:
        lines.append(f"Comment: {event.comment}")
    if event.url:
        lines.append(event.url)
    return "\n".join(lines)


def _clean(text: str, limit: int) -> str:
    """`text` without 4-byte UTF-8 characters, cut to `limit` characters."""
    text = _OUTSIDE_BMP.sub(_REPLACEMENT, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _utc_seconds(event: EventContext) -> str:
    """`2023-11-14T22:13:20Z`: New Relic's example format, to the second."""
    return event.rfc3339[:19] + "Z"
