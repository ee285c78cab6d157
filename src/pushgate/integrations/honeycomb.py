"""Honeycomb markers: `POST {host}/1/markers/{datasetName}` with the `X-Honeycomb-Team` header.

Each event becomes a marker on the dataset's graphs: `message` is what a person reads above the
marker line (who changed what, where, and the comment), `type` groups markers by colour (one
type per kind of change: `flag change`, `project change`, ...), `url` opens the change and
`start_time` is the event time in epoch seconds.

Honeycomb keeps US and EU teams on separate hosts, and an API key only works on its own host.
LaunchDarkly's form has no field for that, so pushgate adds an optional `hostURL`: left empty it
means the US host, which keeps LaunchDarkly-shaped configurations working unchanged, and it is
not filled into stored configurations (LaunchDarkly clients never see a field they do not know).

Creating a marker answers 201 (older documentation says 200; any 2xx is success). A 404 means
the dataset does not exist; a 429 carries `RateLimit: limit=…, remaining=…, reset=<seconds>`.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar, Literal
from urllib.parse import quote

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
    classify_status,
)

US_HOST = "https://api.honeycomb.io"
EU_HOST = "https://api.eu1.honeycomb.io"
HoneycombHost = Literal["https://api.honeycomb.io", "https://api.eu1.honeycomb.io"]
# `RateLimit: limit=100, remaining=0, reset=54`: the seconds until the window resets.
_RATE_LIMIT_RESET = re.compile(r"(?:^|[,;\s])reset=(\d+(?:\.\d+)?)")

DATASET_HINT = (
    "Honeycomb has no such dataset in the API key's environment: check datasetName (the "
    "dataset's slug, as in its URL; markers need an existing dataset) and that the key belongs "
    "to that environment."
)


class HoneycombConfig(IntegrationConfig):
    """Honeycomb dataset, API key and (optionally) the EU host."""

    dataset_name: str = Field(
        alias="datasetName",
        title="Dataset",
        description=(
            "The slug of the dataset whose graphs show the markers, as in its URL. Use __all__ "
            "for markers on every dataset of the environment."
        ),
        json_schema_extra={"placeholder": "production"},
    )
    api_key: SecretStr = Field(
        alias="apiKey",
        title="API key",
        description=(
            "A Honeycomb configuration API key with the Manage Markers permission "
            "(Environment settings → API keys)."
        ),
    )
    host_url: HoneycombHost | None = Field(
        default=None,
        alias="hostURL",
        title="Honeycomb region",
        description=(
            "Optional. Choose https://api.eu1.honeycomb.io for a team hosted in the EU (you log "
            "in at ui.eu1.honeycomb.io); empty means the US host, api.honeycomb.io."
        ),
    )

    @field_validator("dataset_name")
    @classmethod
    def _check_dataset(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value


class Honeycomb(Integration[HoneycombConfig]):
    """Each event becomes a marker on a Honeycomb dataset."""

    key: ClassVar[str] = "honeycomb"
    name: ClassVar[str] = "Honeycomb events"
    description: ClassVar[str] = "Mark changes on the graphs of a Honeycomb dataset."
    config_model = HoneycombConfig
    auth_hint: ClassVar[str] = (
        "Honeycomb refused the API key: check apiKey (a configuration key with the Manage "
        "Markers permission) and hostURL (EU teams use https://api.eu1.honeycomb.io)."
    )

    def build_request(
        self, event: EventContext, config: HoneycombConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        body: dict[str, object] = {
            "message": _message(event),
            "type": f"{event.kind} change",
            "start_time": event.date_ms // 1000,
        }
        if event.url:
            body["url"] = event.url
        base = endpoints.base_url(self.key, config.host_url or US_HOST)
        url = f"{base}/1/markers/{quote(config.dataset_name, safe='')}"
        headers = {**JSON_HEADERS, "X-Honeycomb-Team": config.api_key.get_secret_value()}
        return OutboundRequest("POST", url, headers, json.dumps(body).encode())

    def classify(self, response: InboundResponse) -> None:
        """The common reading; a 404 is about the dataset; a 429 waits for `RateLimit` reset."""
        try:
            classify_status(response, auth_hint=self.auth_hint)
        except RetryableDeliveryError as error:
            if error.retry_after is None:
                error.retry_after = _rate_limit_reset(response)
            raise
        except PermanentDeliveryError as error:
            if response.status == 404:
                error.hint = DATASET_HINT
            raise


def _message(event: EventContext) -> str:
    """`Ana Lopez turned on the flag New checkout in Production [Web shop / Production]: …`."""
    message = event.title
    if event.project:
        where = event.project.name
        if event.project.environment:
            where += f" / {event.project.environment.name}"
        message += f" [{where}]"
    if event.comment:
        message += f": {event.comment}"
    return message


def _rate_limit_reset(response: InboundResponse) -> float | None:
    # Header names are compared without case: proxies and HTTP/2 gateways lowercase them.
    for name, value in response.headers.items():
        if name.lower() == "ratelimit" and (match := _RATE_LIMIT_RESET.search(value)):
            return float(match[1])
    return None
