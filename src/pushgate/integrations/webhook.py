"""Generic webhook: the event as JSON, signed per the Standard Webhooks specification.

Headers `webhook-id` (the event id, stable across retries, for de-duplication),
`webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
`id.timestamp.body`). A secret of the form `whsec_<base64>` is used as its decoded bytes, as the
specification's libraries do; any other secret is used as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from pushgate.events import EventContext
from pushgate.integrations.base import (
    JSON_HEADERS,
    Endpoints,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    check_http_url,
)

SECRET_PREFIX = "whsec_"


class WebhookConfig(IntegrationConfig):
    """Where to post, and the optional signing secret."""

    url: str = Field(
        title="Payload URL",
        description="pushgate POSTs each event here as JSON.",
        json_schema_extra={"placeholder": "https://example.com/hooks/pushgate", "format": "uri"},
    )
    secret: SecretStr | None = Field(
        default=None,
        title="Signing secret",
        description=(
            "Optional. When set, each request carries a Standard Webhooks signature "
            "(webhook-signature header) made with this secret."
        ),
        json_schema_extra={"placeholder": "whsec_…"},
    )

    _check_url = field_validator("url")(check_http_url)


def signing_key(secret: str) -> bytes:
    """The HMAC key for a secret: `whsec_` secrets are base64, others are taken as text."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Webhook(Integration[WebhookConfig]):
    """POST the audit-log entry as received, signed when a secret is set."""

    key: ClassVar[str] = "webhook"
    name: ClassVar[str] = "Webhook"
    description: ClassVar[str] = "Send every matching event as signed JSON to a URL of yours."
    config_model = WebhookConfig
    auth_hint: ClassVar[str] = "The receiver rejected the request: check the signing secret."

    def build_request(
        self, event: EventContext, config: WebhookConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        body = json.dumps(dict(event.payload), separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {**JSON_HEADERS, "webhook-id": event.id, "webhook-timestamp": str(timestamp)}
        if config.secret is not None:
            secret = config.secret.get_secret_value()
            headers["webhook-signature"] = sign(secret, event.id, timestamp, body)
        return OutboundRequest("POST", config.url, headers, body)
