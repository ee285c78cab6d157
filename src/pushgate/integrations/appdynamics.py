"""AppDynamics: custom events on the controller, with OAuth client-credentials tokens.

The event: `POST {controllerURL}/controller/rest/applications/{applicationID}/events` with
everything in the query string: `summary` (the sentence), `comment` (the person's comment and
the details), `eventtype=CUSTOM`, `customeventtype=pushgate`, `severity=INFO`, and one
`propertynames`/`propertyvalues` pair per fact (project, environment, user, link...), which the
controller shows on the event and lets health rules and searches use.

The token: `POST {controllerURL}/controller/api/oauth/access_token` with the form
`grant_type=client_credentials`, `client_id={clientName}@{account}`, `client_secret` answers
`{"access_token", "expires_in"}`. `credentials` keeps it in this adapter instance, keyed by the
whole configuration (so two configurations never share one), until `RENEW_MARGIN` before it
expires, and fetches a new one when the engine reports a 401.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote, urlencode

from pydantic import Field, SecretStr, field_validator

from pushgate.clock import Clock, system_clock
from pushgate.errors import PermanentDeliveryError, RetryableDeliveryError
from pushgate.events import EventContext
from pushgate.integrations.base import (
    RETRYABLE_STATUSES,
    USER_AGENT,
    Endpoints,
    InboundResponse,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    Send,
    check_http_url,
    classify_status,
)

EVENT_TYPE = "CUSTOM"
CUSTOM_EVENT_TYPE = "pushgate"
SEVERITY = "INFO"
# Servers commonly refuse request lines over 8 KB; the query string stays under this.
QUERY_BUDGET = 6_000
SUMMARY_LIMIT = 500
COMMENT_LIMIT = 2_000
PROPERTY_LIMIT = 500
# Cutting texts to fit the budget stops at this length.
SHORTEST_TEXT = 20
# The controller's default lifetime for API-generated tokens, used when an answer omits it.
DEFAULT_TOKEN_LIFETIME = 300.0
# Renew this long before expiry (at most half the lifetime), so a token never dies in flight.
RENEW_MARGIN = 30.0
TOKEN_PATH = "/controller/api/oauth/access_token"

_CREDENTIALS_HINT = (
    "The controller refused the API client: check clientName, clientSecret and account "
    "(Settings > Administration > API Clients; the account name is on the License page)."
)
_APPLICATION_HINT = (
    "The controller does not know this application: check applicationID (the number after "
    "application= in the application's URL, or its exact name) and controllerURL."
)


class AppDynamicsConfig(IntegrationConfig):
    """The controller, the business application, and an API client to get tokens with."""

    account: str = Field(
        min_length=1,
        title="Account name",
        description="Your controller account name (Settings > License > Account).",
        json_schema_extra={"placeholder": "acme"},
    )
    application_id: str = Field(
        min_length=1,
        alias="applicationID",
        title="Application ID",
        description=(
            "The business application the events belong to: its ID (after application= in "
            "the application's URL) or its exact name."
        ),
        json_schema_extra={"placeholder": "42"},
    )
    controller_url: str = Field(
        alias="controllerURL",
        title="Controller URL",
        description="The address of your controller, e.g. https://acme.saas.appdynamics.com.",
        json_schema_extra={"placeholder": "https://acme.saas.appdynamics.com", "format": "uri"},
    )
    client_name: str = Field(
        min_length=1,
        alias="clientName",
        title="API client name",
        description=(
            "An API client (Settings > Administration > API Clients) whose role may create "
            "events in the application."
        ),
        json_schema_extra={"placeholder": "pushgate"},
    )
    client_secret: SecretStr = Field(
        alias="clientSecret",
        title="API client secret",
        description="The secret generated for that API client.",
    )

    @field_validator("account", "client_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if "@" in value or value != value.strip():
            raise ValueError("must not contain @ or surrounding spaces")
        return value

    @field_validator("controller_url")
    @classmethod
    def _check_controller_url(cls, value: str) -> str:
        check_http_url(value)
        value = value.rstrip("/")
        # People paste the address of the controller UI, which ends in /controller.
        return value.removesuffix("/controller").rstrip("/")


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    renew_at: float


class AppDynamics(Integration[AppDynamicsConfig]):
    """Each event becomes one custom event of type `pushgate` on the application."""

    key: ClassVar[str] = "appdynamics"
    name: ClassVar[str] = "AppDynamics"
    description: ClassVar[str] = (
        "Record each change as a custom event on an AppDynamics application."
    )
    config_model = AppDynamicsConfig
    auth_hint: ClassVar[str] = (
        "The controller refused a fresh token: check that the role of the API client clientName "
        "may create events in applicationID."
    )

    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def build_request(
        self, event: EventContext, config: AppDynamicsConfig, endpoints: Endpoints
    ) -> OutboundRequest:
        application = quote(config.application_id, safe="")
        url = f"{config.controller_url}/controller/rest/applications/{application}/events"
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        return OutboundRequest("POST", url, headers, params=_params(event))

    def classify(self, response: InboundResponse) -> None:
        if response.status in (400, 404):
            raise PermanentDeliveryError(
                f"HTTP {response.status}",
                status_code=response.status,
                response_body=response.text(),
                hint=_APPLICATION_HINT,
            )
        classify_status(response, auth_hint=self.auth_hint)

    async def credentials(
        self, config: AppDynamicsConfig, endpoints: Endpoints, send: Send, *, refresh: bool
    ) -> Mapping[str, str]:
        """`Authorization: Bearer <token>`, from the cache or a new client-credentials grant."""
        key = _cache_key(config)
        async with self._locks.setdefault(key, asyncio.Lock()):
            token = self._tokens.get(key)
            now = self._clock() / 1000
            if refresh or token is None or now >= token.renew_at:
                token = await self._fetch(config, send, now)
                self._tokens = {k: t for k, t in self._tokens.items() if t.renew_at > now}
                self._tokens[key] = token
        return {"Authorization": f"Bearer {token.value}"}

    async def _fetch(self, config: AppDynamicsConfig, send: Send, now: float) -> _Token:
        form = {
            "grant_type": "client_credentials",
            "client_id": f"{config.client_name}@{config.account}",
            "client_secret": config.client_secret.get_secret_value(),
        }
        request = OutboundRequest(
            "POST",
            config.controller_url + TOKEN_PATH,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            urlencode(form).encode(),
        )
        response = await send(request)
        return _read_token(response, now)


def _read_token(response: InboundResponse, now: float) -> _Token:
    """The token in a successful answer; a `DeliveryError` naming the fields to check otherwise."""
    status = response.status
    description = f"token request: HTTP {status}"
    body = response.text()
    if status in (400, 401, 403):
        raise PermanentDeliveryError(
            description, status_code=status, response_body=body, hint=_CREDENTIALS_HINT
        )
    if status in RETRYABLE_STATUSES or status >= 500:
        raise RetryableDeliveryError(
            description,
            status_code=status,
            response_body=body,
            retry_after=response.retry_after,
            hint="The controller is busy or failing; deliveries are retried on their schedule.",
        )
    answer = response.json() if 200 <= status < 300 else None
    value = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise PermanentDeliveryError(
            description if answer is None else f"{description} without an access_token",
            status_code=status,
            response_body=body,
            hint="No token came back: check controllerURL (the address of your controller).",
        )
    lifetime = answer.get("expires_in") if isinstance(answer, dict) else None
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return _Token(value, now + lifetime - min(RENEW_MARGIN, lifetime / 2))


def _cache_key(config: AppDynamicsConfig) -> str:
    """A digest of every field, secret included: equal only for identical configurations."""
    fields = config.model_dump(mode="python")
    fields["client_secret"] = config.client_secret.get_secret_value()
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _params(event: EventContext) -> list[tuple[str, str]]:
    """The query string, its texts cut (comment, then summary, then properties) to fit."""
    limits = [COMMENT_LIMIT, SUMMARY_LIMIT, PROPERTY_LIMIT]
    while True:
        params = _assemble(event, *limits)
        shorter = next((i for i, limit in enumerate(limits) if limit > SHORTEST_TEXT), None)
        if len(urlencode(params)) <= QUERY_BUDGET or shorter is None:
            return params
        limits[shorter] //= 2


def _assemble(
    event: EventContext, comment_limit: int, summary_limit: int, property_limit: int
) -> list[tuple[str, str]]:
    params = [("summary", _clip(event.title, summary_limit))]
    comment = _clip(_comment(event), comment_limit)
    if comment:
        params.append(("comment", comment))
    params += [
        ("eventtype", EVENT_TYPE),
        ("customeventtype", CUSTOM_EVENT_TYPE),
        ("severity", SEVERITY),
    ]
    for name, value in _properties(event):
        params += [("propertynames", name), ("propertyvalues", _clip(value, property_limit))]
    return params


def _comment(event: EventContext) -> str:
    parts = [part for part in (event.comment, event.details) if part]
    return "\n\n".join(parts)


def _properties(event: EventContext) -> list[tuple[str, str]]:
    found: list[tuple[str, str | None]] = [("kind", event.kind), ("action", event.action)]
    if event.project is not None:
        found += [("project", event.project.name), ("project_key", event.project.key)]
        environment = event.project.environment
        if environment is not None:
            found += [("environment", environment.name), ("environment_key", environment.key)]
    found.append(("key", event.key))
    if event.member is not None:
        found += [("user", event.member.display_name), ("user_email", event.member.email)]
    found += [("url", event.url), ("event_id", event.id)]
    return [(name, value) for name, value in found if value]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
