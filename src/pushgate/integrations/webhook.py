"""Generic webhook: the event as JSON, signed per the Standard Webhooks specification.

Headers `webhook-id` (the event id, stable across retries, for de-duplication),
`webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
`id.timestamp.body`). A secret of the form `whsec_<base64>` is used as its decoded bytes, as the
specification's libraries do; any other secret is used as its UTF-8 bytes.

Optional extra headers go with every request: `headers` (a map, for plain values such as a
routing key) and `authorization` (a secret, sent as the `Authorization` header, masked like every
secret). A custom header may not replace what pushgate or the connection sets (`RESERVED_HEADERS`
and every `webhook-*` name) and may not carry credentials in the clear (`CREDENTIAL_HEADERS`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from pushgate.events import EventContext
from pushgate.integrations.base import (
    HEADER_NAME,
    JSON_HEADERS,
    Endpoints,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    check_secret_url,
)

SECRET_PREFIX = "whsec_"
# Set by pushgate or by the HTTP connection itself; a custom header must not replace them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "transfer-encoding", "connection"}
)
# The Standard Webhooks headers (webhook-id, -timestamp, -signature) and any future ones.
RESERVED_PREFIX = "webhook-"
# Credentials belong in the secret `authorization` field, which is masked in every answer.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
MAX_HEADERS = 20
# Servers commonly refuse header sections over 8 KB; keep every value well inside that.
MAX_HEADER_VALUE = 1024
# Values here are printable ASCII (no CR/LF, no control chars).
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")


class WebhookConfig(IntegrationConfig):
    """Where to post, and the optional signing secret. The URL is a secret: receivers such as
    chat webhooks take their credential in the path or the query string."""

    url: SecretStr = Field(
        title="Payload URL",
        description=(
            "pushgate POSTs each event here as JSON. Kept like a secret: answers show only its "
            "host."
        ),
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

    headers: dict[str, str] | None = Field(
        default=None,
        title="Custom headers",
        description=(
            "Optional. Extra headers sent with every request, e.g. X-Routing-Key. Values are "
            "shown in plain text: put credentials in the Authorization header field instead."
        ),
        json_schema_extra={"placeholder": '{"X-Routing-Key": "platform"}'},
    )
    authorization: SecretStr | None = Field(
        default=None,
        title="Authorization header",
        description=(
            "Optional. Sent as the Authorization header, as written (e.g. Bearer <token>); "
            "stored encrypted and masked like every secret."
        ),
        json_schema_extra={"placeholder": "Bearer …"},
    )

    _check_url = field_validator("url")(check_secret_url)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        seen: set[str] = set()
        for name, text in value.items():
            lowered = name.lower()
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if lowered in seen:
                raise ValueError(f"{name!r} appears twice (header names ignore case)")
            seen.add(lowered)
            if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIX):
                raise ValueError(f"{name} is set by pushgate and cannot be replaced")
            if lowered in CREDENTIAL_HEADERS:
                raise ValueError(
                    f"{name} carries credentials: use the secret authorization field"
                    if lowered == "authorization"
                    else f"{name} carries credentials and cannot be stored in plain text"
                )
            if len(text) > MAX_HEADER_VALUE or not _HEADER_VALUE.fullmatch(text):
                raise ValueError(
                    f"the value of {name} must be printable ASCII of at most "
                    f"{MAX_HEADER_VALUE} characters"
                )
        return value

    @field_validator("authorization")
    @classmethod
    def _check_authorization(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value()
            if not text or len(text) > MAX_HEADER_VALUE or not _HEADER_VALUE.fullmatch(text):
                raise ValueError(f"must be printable ASCII of 1 to {MAX_HEADER_VALUE} characters")
        return value


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
        body = event.payload_json
        timestamp = int(time.time())
        custom = dict(config.headers or {})
        if config.authorization is not None:
            custom["Authorization"] = config.authorization.get_secret_value()
        headers = {
            **_without(JSON_HEADERS, custom),
            **custom,
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
        }
        if config.secret is not None:
            secret = config.secret.get_secret_value()
            headers["webhook-signature"] = sign(secret, event.id, timestamp, body)
        return OutboundRequest("POST", config.url.get_secret_value(), headers, body)


def _without(headers: Mapping[str, str], replaced: Mapping[str, str]) -> dict[str, str]:
    """`headers` less those that `replaced` names, in any case (e.g. a custom User-Agent)."""
    if not replaced:
        return dict(headers)
    names = {name.lower() for name in replaced}
    return {name: value for name, value in headers.items() if name.lower() not in names}
