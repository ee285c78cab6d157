"""Datadog events: `POST {site}/api/v1/events` with the `DD-API-KEY` header; success is 202.

Each event becomes one Datadog event: a plain title, a markdown body (`%%% \\n … \\n %%%`, at
most 4,000 characters, Datadog's limit), `date_happened` in epoch seconds and `key:value` tags
that can be searched and faceted (`kind:flag`, `project_key:web`, `flag_key:new-checkout`, ...).
With `hideMemberDetails` the person who made the change is left out of the title, the text and
the tags: their name and email are removed wherever they appear.

Datadog answers a bad API key with 403 and a rate limit with 429 plus `X-RateLimit-Reset`
(seconds until the window resets), which is used as the retry delay when no `Retry-After` is sent.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from pushgate.errors import RetryableDeliveryError
from pushgate.events import EventContext, Member
from pushgate.integrations.base import (
    JSON_HEADERS,
    Endpoints,
    InboundResponse,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    classify_status,
)

DatadogSite = Literal[
    "https://api.datadoghq.com",
    "https://api.datadoghq.eu",
    "https://api.us3.datadoghq.com",
    "https://api.us5.datadoghq.com",
    "https://api.ap1.datadoghq.com",
    "https://api.ap2.datadoghq.com",
    "https://api.ddog-gov.com",
    "https://api.us2.ddog-gov.com",
]
# Datadog refuses event text longer than this.
TEXT_LIMIT = 4000
# Datadog refuses aggregation keys longer than this.
AGGREGATION_KEY_LIMIT = 100
MARKDOWN_START = "%%% \n"
MARKDOWN_END = "\n %%%"
SOURCE_TYPE = "pushgate"
ANONYMOUS = "Someone"


class DatadogConfig(IntegrationConfig):
    """Datadog API key and site."""

    api_key: SecretStr = Field(
        alias="apiKey",
        title="API key",
        description=(
            "A Datadog API key (Organization settings → API keys). An application key does not "
            "work here."
        ),
        json_schema_extra={"placeholder": "32 hexadecimal characters"},
    )
    host_url: DatadogSite = Field(
        default="https://api.datadoghq.com",
        alias="hostURL",
        title="Datadog site",
        description=(
            "The API host of your Datadog site: the one matching the address you log in to "
            "(app.datadoghq.com is api.datadoghq.com, app.datadoghq.eu is api.datadoghq.eu)."
        ),
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
    auth_hint: ClassVar[str] = (
        "Datadog refused the API key: check apiKey (an API key, not an application key) and "
        "that hostURL is the site the key belongs to."
    )

    def build_request(
        self, event: EventContext, config: DatadogConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        hide = config.hide_member_details
        body = {
            "title": _anonymous_title(event) if hide else event.title,
            "text": _text(event, hide_member=hide),
            "date_happened": event.date_ms // 1000,
            "tags": _tags(event, hide_member=hide),
            "source_type_name": SOURCE_TYPE,
            "aggregation_key": (event.resource or event.id)[:AGGREGATION_KEY_LIMIT],
            "alert_type": "info",
        }
        base = endpoints.base_url(self.key, config.host_url)
        headers = {**JSON_HEADERS, "DD-API-KEY": config.api_key.get_secret_value()}
        return OutboundRequest("POST", f"{base}/api/v1/events", headers, json.dumps(body).encode())

    def classify(self, response: InboundResponse) -> None:
        """The common reading, with Datadog's `X-RateLimit-Reset` as the delay of a 429."""
        try:
            classify_status(response, auth_hint=self.auth_hint)
        except RetryableDeliveryError as error:
            if error.retry_after is None:
                error.retry_after = _rate_limit_reset(response)
            raise


def _text(event: EventContext, *, hide_member: bool) -> str:
    """The markdown body: title, where, details, comment and a link, cut to Datadog's limit."""
    member = event.member if hide_member else None
    lines = [_anonymous_title(event) if hide_member else event.title_markdown]
    if event.project:
        where = f"**Project:** {event.project.name}"
        if event.project.environment:
            where += f" · **Environment:** {event.project.environment.name}"
        lines += ["", where]
    if event.details_markdown:
        lines += ["", _redact(event.details_markdown, member)]
    if event.comment:
        lines += ["", *(f"> {line}" for line in _redact(event.comment, member).splitlines())]
    if event.url:
        lines += ["", f"[Open the change]({event.url})"]
    room = TEXT_LIMIT - len(MARKDOWN_START) - len(MARKDOWN_END)
    content = "\n".join(lines)
    if len(content) > room:
        content = content[: room - 1] + "…"
    return MARKDOWN_START + content + MARKDOWN_END


def _anonymous_title(event: EventContext) -> str:
    """The title without the person: "Someone turned on the flag New checkout in Production"."""
    if event.title_verb:
        title = f"{ANONYMOUS} {event.title_verb} {event.name}"
    else:
        title = f"{ANONYMOUS} changed the {event.kind} {event.name}"
    if event.environment and not event.is_environment:
        title += f" in {event.environment.name}"
    return title


def _redact(text: str, member: Member | None) -> str:
    """`text` with the member's email and names replaced by "Someone" (whole words only)."""
    if member is None:
        return text
    names = [member.email, " ".join(n for n in (member.first_name, member.last_name) if n)]
    names += [member.first_name, member.last_name]
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", ANONYMOUS, text, flags=re.IGNORECASE)
    return text


def _tags(event: EventContext, *, hide_member: bool) -> list[str]:
    """`key:value` tags: what changed, where, the entry's own tags and (unless hidden) who."""
    tags = [f"kind:{event.kind}", *(f"action:{action}" for action in event.actions)]
    if event.project:
        tags.append(f"project_key:{event.project.key}")
        tags += [f"project_tag:{tag}" for tag in event.project.tags]
        if event.project.environment:
            tags.append(f"environment_key:{event.project.environment.key}")
            tags += [f"environment_tag:{tag}" for tag in event.project.environment.tags]
    if event.key:
        tags.append(f"{event.kind}_key:{event.key}")
    tags += [f"{event.kind}_tag:{tag}" for tag in event.tags]
    if event.member and event.member.email and not hide_member:
        tags.append(f"member:{event.member.email}")
    return list(dict.fromkeys(tags))


def _rate_limit_reset(response: InboundResponse) -> float | None:
    """Seconds until Datadog's rate-limit window resets, when the 429 says so."""
    # Header names are compared without case: proxies and HTTP/2 gateways lowercase them.
    for name, value in response.headers.items():
        if name.lower() == "x-ratelimit-reset":
            try:
                return max(float(value), 0.0)
            except ValueError:
                return None
    return None
