"""Microsoft Teams: `POST {url}` with an Adaptive Card, for incoming webhooks and Workflows.

Two kinds of URL reach a Teams channel. Legacy connector webhooks (Incoming Webhook) answer
200 with the body `1`; when they cannot post, they too answer 200, with an error text in the
body such as "Microsoft Teams endpoint returned HTTP error 429 …". Workflows webhooks (Power
Automate "Post to a channel when a webhook request is received") answer 202 and no body. Both
take the same message: `{"type": "message", "attachments": [Adaptive Card]}`.

The card reads top to bottom: the title in bold (who did what), the project and environment,
the details, the comment, and a "View the change" button when the event links to the change.
Teams refuses messages above about 28 KB, so long text is cut to keep the card under
`CARD_BYTE_BUDGET`.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

from pushgate.errors import PermanentDeliveryError, RetryableDeliveryError
from pushgate.events import EventContext
from pushgate.integrations.base import (
    JSON_HEADERS,
    Endpoints,
    InboundResponse,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    check_secret_url,
    classify_status,
)

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# 1.2 renders in every Teams client, desktop, web and mobile.
CARD_VERSION = "1.2"
# Teams refuses messages over ~28 KB; stay well under it, leaving room for its own envelope.
CARD_BYTE_BUDGET = 24_000
# Limits per text block, so one long field cannot crowd out the others.
TITLE_LIMIT = 500
DETAILS_LIMIT = 6_000
COMMENT_LIMIT = 2_000
ELLIPSIS = "…"
# What a legacy connector answers when the card was posted.
LEGACY_OK = "1"
# A legacy connector reports the channel's own refusal inside a 200 body.
_EMBEDDED_STATUS = re.compile(r"HTTP error (\d{3})")


class TeamsConfig(IntegrationConfig):
    """The channel's webhook URL: a secret, since it carries its credential (`sig=` of a
    Workflows URL, the path of a legacy connector's)."""

    url: SecretStr = Field(
        title="Webhook URL",
        description=(
            "The URL of a Teams Workflows webhook (Post to a channel when a webhook request is "
            "received) or of a legacy Incoming Webhook connector on the channel."
        ),
        json_schema_extra={
            "placeholder": "https://prod-00.westus.logic.azure.com:443/workflows/…",
            "format": "uri",
        },
    )

    _check_url = field_validator("url")(check_secret_url)


class Teams(Integration[TeamsConfig]):
    """Each event becomes one Adaptive Card message in the channel."""

    key: ClassVar[str] = "msteams"
    name: ClassVar[str] = "Microsoft Teams"
    description: ClassVar[str] = "Post each change as a card in a Microsoft Teams channel."
    config_model = TeamsConfig
    auth_hint: ClassVar[str] = (
        "Teams refused the request: copy the whole webhook URL again (a Workflows URL carries "
        "its signature in the query string) and check that the workflow is still on."
    )

    def build_request(
        self, event: EventContext, config: TeamsConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        details = _clip(event.details.strip(), DETAILS_LIMIT)
        body = _encode(_message(event, details))
        # Cut the details further (halving) until the whole message fits the budget.
        while len(body) > CARD_BYTE_BUDGET and details:
            details = _clip(details, len(details) // 2) if len(details) > 1 else ""
            body = _encode(_message(event, details))
        return OutboundRequest("POST", config.url.get_secret_value(), dict(JSON_HEADERS), body)

    def classify(self, response: InboundResponse) -> None:
        if response.status == 200:
            _classify_legacy(response)
            return
        if response.status == 404:
            raise PermanentDeliveryError(
                "HTTP 404",
                status_code=404,
                response_body=response.text(),
                hint=(
                    "This webhook no longer exists (removed from the channel, or its workflow "
                    "deleted): create a new one and update url."
                ),
            )
        if response.status == 413:
            raise PermanentDeliveryError(
                "HTTP 413",
                status_code=413,
                response_body=response.text(),
                hint="Teams refused the card as too large (about 28 KB is the limit).",
            )
        if response.status == 400:
            raise PermanentDeliveryError(
                "HTTP 400",
                status_code=400,
                response_body=response.text(),
                hint=(
                    "Teams refused the card. If this URL is a Workflows webhook, check that "
                    "its flow posts the attachments of the request as an Adaptive Card."
                ),
            )
        classify_status(response, auth_hint=self.auth_hint)


def _classify_legacy(response: InboundResponse) -> None:
    """A 200 succeeds only with the body `1`; any other body is the connector's error report."""
    text = response.text()
    if text.strip() == LEGACY_OK:
        return
    found = _EMBEDDED_STATUS.search(text)
    embedded = int(found.group(1)) if found else None
    description = f"HTTP 200 without confirmation: {text.strip()[:200] or '(empty body)'}"
    if embedded is not None and (embedded == 429 or embedded >= 500):
        raise RetryableDeliveryError(
            description,
            status_code=200,
            response_body=text,
            retry_after=response.retry_after,
            hint="Teams is throttling or failing this channel; deliveries are retried later.",
        )
    raise PermanentDeliveryError(
        description,
        status_code=200,
        response_body=text,
        hint=(
            "The Teams connector answered 200 but did not post the card (it answers 1 when it "
            "does); its message above says why."
        ),
    )


def _message(event: EventContext, details: str) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": _clip(event.title, TITLE_LIMIT),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    where = _where(event)
    if where:
        body.append(
            {"type": "TextBlock", "text": where, "isSubtle": True, "spacing": "None", "wrap": True}
        )
    if details:
        body.append({"type": "TextBlock", "text": details, "wrap": True})
    if event.comment:
        body.append(
            {
                "type": "TextBlock",
                "text": "Comment: " + _clip(event.comment.strip(), COMMENT_LIMIT),
                "wrap": True,
            }
        )
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
    }
    if event.url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "View the change", "url": event.url}]
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _where(event: EventContext) -> str:
    """`Project: Web shop · Environment: Production`, or as much of it as the event has."""
    if event.project is None:
        return ""
    parts = [f"Project: {event.project.name}"]
    if event.project.environment is not None:
        parts.append(f"Environment: {event.project.environment.name}")
    return " · ".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def _encode(message: dict[str, Any]) -> bytes:
    # UTF-8 rather than \\u escapes: non-Latin text then costs 2 to 3 bytes a character, not 6.
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
