"""Datadog events: `POST {site}/api/v1/events` with the `DD-API-KEY` header; success is 202."""

from __future__ import annotations

import json
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from pushgate.events import EventContext
from pushgate.integrations.base import (
    JSON_HEADERS,
    Endpoints,
    Integration,
    IntegrationConfig,
    OutboundRequest,
)

DatadogSite = Literal[
    "https://api.datadoghq.com",
    "https://api.datadoghq.eu",
    "https://api.us3.datadoghq.com",
    "https://api.us5.datadoghq.com",
    "https://api.ap1.datadoghq.com",
    "https://api.ddog-gov.com",
]
# Datadog refuses event text longer than this.
TEXT_LIMIT = 4000
SOURCE_TYPE = "pushgate"


class DatadogConfig(IntegrationConfig):
    """Datadog API key and site."""

    api_key: SecretStr = Field(
        alias="apiKey",
        title="API key",
        description="A Datadog API key (Organization settings → API keys).",
    )
    host_url: DatadogSite = Field(
        default="https://api.datadoghq.com",
        alias="hostURL",
        title="Datadog site",
        description="The API host of your Datadog site (US1 is api.datadoghq.com).",
    )
    hide_member_details: bool = Field(
        default=False,
        alias="hideMemberDetails",
        title="Hide member details",
        description="Leave out who made the change (name and email) from events and tags.",
    )


class Datadog(Integration[DatadogConfig]):
    """Each event becomes a Datadog event with markdown text and `key:value` tags."""

    key: ClassVar[str] = "datadog"
    name: ClassVar[str] = "Datadog events"
    description: ClassVar[str] = "Show changes as events in Datadog, to overlay on graphs."
    config_model = DatadogConfig
    auth_hint: ClassVar[str] = "Datadog refused the API key: check apiKey and hostURL (site)."

    def build_request(
        self, event: EventContext, config: DatadogConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        hide = config.hide_member_details
        title = _anonymous_title(event) if hide else event.title
        lines = [event.title_markdown if not hide else title]
        if event.details_markdown:
            lines += ["", event.details_markdown]
        if event.comment:
            lines += ["", f"> {event.comment}"]
        if event.url:
            lines += ["", f"[View the change]({event.url})"]
        text = "%%% \n" + "\n".join(lines)[: TEXT_LIMIT - 12] + "\n %%%"
        body = {
            "title": title,
            "text": text,
            "date_happened": event.date_ms // 1000,
            "tags": _tags(event, hide_member=hide),
            "source_type_name": SOURCE_TYPE,
            "aggregation_key": event.key or event.id,
            "alert_type": "info",
        }
        base = endpoints.base_url(self.key, config.host_url)
        headers = {**JSON_HEADERS, "DD-API-KEY": config.api_key.get_secret_value()}
        return OutboundRequest("POST", f"{base}/api/v1/events", headers, json.dumps(body).encode())


def _anonymous_title(event: EventContext) -> str:
    where = f" in {event.environment.name}" if event.environment else ""
    return f"{event.kind} {event.name} changed{where}"


def _tags(event: EventContext, *, hide_member: bool) -> list[str]:
    tags = [f"kind:{event.kind}"]
    if event.action:
        tags.append(f"action:{event.action}")
    if event.project:
        tags.append(f"project_key:{event.project.key}")
        if event.project.environment:
            tags.append(f"environment_key:{event.project.environment.key}")
    if event.key:
        tags.append(f"{event.kind}_key:{event.key}")
    tags.extend(event.tags)
    if event.member and event.member.email and not hide_member:
        tags.append(f"member:{event.member.email}")
    return tags
