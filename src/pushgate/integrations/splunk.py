"""Splunk: one JSON event to the HTTP Event Collector, `POST {base-url}/services/collector/event`.

Auth is the header `Authorization: Splunk {token}`. The envelope carries `time` in Unix seconds
(milliseconds as the fraction), `source` "pushgate" and `sourcetype` `SOURCETYPE`; the event
itself is an object, so Splunk extracts its fields at search time (`project.key`, `user.email`).
No `index` is sent: the token's default index applies.

HEC answers `{"text": ..., "code": n}` on success and failure alike; the code says what went
wrong more precisely than the HTTP status, so `classify` reads it first (see `HEC_CODES`).

`skip-ca-verification` turns certificate checks off for this configuration's requests only,
for Splunk Enterprise on a self-signed certificate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

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
    check_http_url,
    classify_status,
)

EVENT_PATH = "/services/collector/event"
SOURCE = "pushgate"
# Splunk's naming convention is vendor:product[:kind]; searches start from `sourcetype=pushgate:*`.
SOURCETYPE = "pushgate:change"
# HEC events can be large, but nobody reads pages of details in a search result.
DETAILS_LIMIT = 10_000
# The code in a successful answer.
HEC_SUCCESS = 0

_TOKEN_HINT = (
    "Splunk refused the HEC token: check token (Settings > Data inputs > HTTP Event Collector) "
    "and that base-url points at the collector of the same Splunk."
)


@dataclass(frozen=True, slots=True)
class HecCode:
    """What one HEC status code means for the attempt."""

    retryable: bool
    hint: str


# The status codes HEC documents, with what an operator should do about each.
HEC_CODES: dict[int, HecCode] = {
    1: HecCode(False, "This HEC token is disabled: enable it in Splunk or use another token."),
    2: HecCode(False, _TOKEN_HINT),
    3: HecCode(False, _TOKEN_HINT),
    4: HecCode(False, _TOKEN_HINT),
    5: HecCode(False, "Splunk received no data; this is a pushgate bug, please report it."),
    6: HecCode(
        False, "Splunk could not parse the event; this is a pushgate bug, please report it."
    ),
    7: HecCode(
        False,
        "The default index of this HEC token does not exist or the token may not write to it: "
        "fix the token's index settings in Splunk.",
    ),
    8: HecCode(True, "Splunk had an internal error; deliveries are retried on their schedule."),
    9: HecCode(
        True, "Splunk is busy (its queues are full); deliveries are retried on their schedule."
    ),
    10: HecCode(
        False,
        "This HEC token has indexer acknowledgement turned on, which needs a channel per "
        "client: turn acknowledgement off for this token.",
    ),
    11: HecCode(
        False, "This HEC token has indexer acknowledgement turned on: turn it off for this token."
    ),
    12: HecCode(False, "Splunk found no event field; this is a pushgate bug, please report it."),
    13: HecCode(False, "Splunk found an empty event; this is a pushgate bug, please report it."),
}


class SplunkConfig(IntegrationConfig):
    """Where the HTTP Event Collector listens and its token."""

    base_url: str = Field(
        alias="base-url",
        title="HEC base URL",
        description=(
            "The address of the HTTP Event Collector, with its port and without a path: "
            "https://<host>:8088 for Splunk Enterprise, "
            "https://http-inputs-<stack>.splunkcloud.com for Splunk Cloud."
        ),
        json_schema_extra={"placeholder": "https://splunk.example.com:8088", "format": "uri"},
    )
    token: SecretStr = Field(
        title="HEC token",
        description=(
            "An HTTP Event Collector token (Settings > Data inputs > HTTP Event Collector)."
        ),
        json_schema_extra={"placeholder": "12345678-abcd-4ef0-9876-0123456789ab"},
    )
    skip_ca_verification: bool = Field(
        default=False,
        alias="skip-ca-verification",
        title="Skip certificate verification",
        description=(
            "Accept any TLS certificate from this collector, e.g. a self-signed one. Only for "
            "collectors on a network you trust: it allows anyone in the path to read the events."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        check_http_url(value)
        if "/services/collector" in urlsplit(value).path:
            raise ValueError("enter the base URL only, without /services/collector")
        return value.rstrip("/")


class Splunk(Integration[SplunkConfig]):
    """Each event becomes one HEC event with sourcetype `SOURCETYPE`."""

    key: ClassVar[str] = "splunk"
    name: ClassVar[str] = "Splunk"
    description: ClassVar[str] = "Index each change in Splunk through the HTTP Event Collector."
    config_model = SplunkConfig
    auth_hint: ClassVar[str] = _TOKEN_HINT

    def build_request(
        self, event: EventContext, config: SplunkConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        body = {
            "time": event.date_s,
            "source": SOURCE,
            "sourcetype": SOURCETYPE,
            "event": _event(event),
        }
        headers = {
            **JSON_HEADERS,
            "Authorization": f"Splunk {config.token.get_secret_value()}",
        }
        return OutboundRequest(
            "POST",
            config.base_url + EVENT_PATH,
            headers,
            json.dumps(body, separators=(",", ":")).encode(),
            verify_tls=not config.skip_ca_verification,
        )

    def classify(self, response: InboundResponse) -> None:
        answer = response.json()
        code = answer.get("code") if isinstance(answer, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            if 200 <= response.status < 300:
                raise PermanentDeliveryError(
                    f"HTTP {response.status} without an HEC answer",
                    status_code=response.status,
                    response_body=response.text(),
                    hint="This is not an HTTP Event Collector: check base-url (and its port).",
                )
            classify_status(response, auth_hint=self.auth_hint)
            return
        if code == HEC_SUCCESS and 200 <= response.status < 300:
            return
        text = answer.get("text") if isinstance(answer.get("text"), str) else "?"
        description = f"HTTP {response.status}: HEC code {code} ({text})"
        known = HEC_CODES.get(code)
        if known is None:
            if not 200 <= response.status < 300:
                classify_status(response, auth_hint=self.auth_hint)  # raises by the status
            raise PermanentDeliveryError(
                description, status_code=response.status, response_body=response.text()
            )
        error = RetryableDeliveryError if known.retryable else PermanentDeliveryError
        raise error(
            description,
            status_code=response.status,
            response_body=response.text(),
            hint=known.hint,
            retry_after=response.retry_after if known.retryable else None,
        )


def _event(event: EventContext) -> dict[str, Any]:
    """The searchable event: what changed, where, who, why, and the link."""
    out: dict[str, Any] = {
        "id": event.id,
        "kind": event.kind,
        "action": event.action,
        "message": event.title,
        "name": event.name,
        "key": event.key,
        "resource": event.resource,
    }
    if event.details:
        out["details"] = event.details[:DETAILS_LIMIT]
    if event.project is not None:
        out["project"] = {"key": event.project.key, "name": event.project.name}
        environment = event.project.environment
        if environment is not None:
            out["environment"] = {"key": environment.key, "name": environment.name}
    if event.member is not None:
        out["user"] = {"name": event.member.display_name, "email": event.member.email}
    if event.comment:
        out["comment"] = event.comment
    if event.url:
        out["url"] = event.url
    if event.tags:
        out["tags"] = list(event.tags)
    return {key: value for key, value in out.items() if value is not None}
