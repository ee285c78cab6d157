"""The JSON shapes of the API, as pydantic models: what the OpenAPI document describes.

They describe; they do not parse. Requests are checked by the domain (`configurations`,
`events`, `policy`, `sources`, ...) with LaunchDarkly's 400 messages, and answers are built by
the functions that always built them (`configurations.configuration_json`, ...). The names
are LaunchDarkly's where LaunchDarkly has the shape (`SubscriptionPost`, `Integration`,
`Integrations`, `PatchOperation`), so generated clients read alike. Every answer the API tests
record is checked against these shapes, so they cannot drift from what is sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, RootModel

from pushgate.api.openapi import Shape, request_body

# The values of the domain's enums (tests/test_openapi.py holds them equal), as `Literal`s so
# that the description lists them.
HealthName = Literal["healthy", "failing", "paused", "off"]
AttemptOutcome = Literal["success", "failure"]
RoleName = Literal["reader", "writer", "admin"]
SourceKindName = Literal["launchdarkly-webhook", "standard-webhooks"]

UNIX_MS = "Unix milliseconds"
STORED_ID = "24 hexadecimal digits"


class Link(Shape):
    """A link to a resource."""

    href: str
    type: str | None = None


class SelfLinks(Shape):
    """The link to the resource itself."""

    self_: Link = Field(alias="self")


class PageLinks(Shape):
    """This page, and the next one when there may be one."""

    self_: Link = Field(alias="self")
    next: Link | None = None


# ---- Configurations (LaunchDarkly's "Integration audit log subscriptions") ----


class Statement(Shape):
    """A policy statement: LaunchDarkly's syntax; `resources` or `notResources`, `actions` or
    `notActions`."""

    effect: Literal["allow", "deny"]
    resources: list[str] | None = Field(None, examples=[["proj/*:env/production:flag/*"]])
    notResources: list[str] | None = None
    actions: list[str] | None = Field(None, examples=[["*"]])
    notActions: list[str] | None = None


class SubscriptionPost(Shape):
    """A new configuration (LaunchDarkly's `SubscriptionPost`)."""

    name: str = Field(min_length=1, max_length=256)
    config: dict[str, Any] = Field(
        description="The integration's fields (see GET /api/v2/integration-manifests)"
    )
    on: bool = Field(False, description="Whether it receives events")
    tags: list[str] = Field(default_factory=list)
    statements: list[Statement] | None = Field(
        None, description="The policy; absent: the integration's default policy"
    )
    url: str | None = Field(None, description="Accepted for LaunchDarkly compatibility; unused")
    apiKey: str | None = Field(None, description="Accepted for LaunchDarkly compatibility; unused")


class PatchOperation(Shape):
    """One RFC 6902 JSON Patch operation on `/name`, `/on`, `/tags`, `/config[/<field>]` or
    `/statements`."""

    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: str = Field(examples=["/on"])
    value: Any = None
    from_: str | None = Field(None, alias="from")


class ErrorLogEntry(Shape):
    """One failed attempt: LaunchDarkly's `statusCode`, `responseBody`, `timestamp`, and more."""

    timestamp: int = Field(description=UNIX_MS)
    statusCode: int | None = Field(None, description="Absent when there was no HTTP answer")
    responseBody: str | None = None
    error: str | None = Field(None, description="What happened, when there was no HTTP answer")
    hint: str | None = None
    eventId: str
    attempt: int
    willRetry: bool
    id: int = Field(description="Pass it as `before` for the next page of the error log")


class SubscriptionStatus(Shape):
    """LaunchDarkly's `_status`: integer counters, millisecond times, absent when unknown."""

    successCount: int
    errorCount: int
    lastSuccess: int | None = Field(None, description=UNIX_MS)
    lastError: int | None = Field(None, description=UNIX_MS)
    errors: list[ErrorLogEntry] = Field(description="The most recent errors, newest first")


class Health(Shape):
    """pushgate's `_health`: how the configuration's deliveries are going."""

    state: HealthName
    reason: str | None = None
    since: int | None = Field(None, description=f"When the state began, {UNIX_MS}")
    resumesAt: int | None = Field(None, description=f"When a paused one probes, {UNIX_MS}")
    pending: int = Field(description="Deliveries waiting, held or in flight")


class Integration(Shape):
    """A configuration (LaunchDarkly's `Integration`); secrets masked as `********`."""

    links: SelfLinks = Field(alias="_links")
    id: str = Field(alias="_id", description=STORED_ID)
    kind: str = Field(description="The integration key")
    name: str
    config: dict[str, Any]
    statements: list[Statement]
    on: bool
    tags: list[str]
    status: SubscriptionStatus = Field(alias="_status")
    health: Health = Field(alias="_health")


class Integrations(Shape):
    """The configurations of one integration (LaunchDarkly's `Integrations`)."""

    links: SelfLinks = Field(alias="_links")
    items: list[Integration]
    key: str


class ErrorLog(Shape):
    """A page of a configuration's error log, newest first."""

    links: PageLinks = Field(alias="_links")
    items: list[ErrorLogEntry]
    totalCount: int = Field(description="Every error ever counted (`_status.errorCount`)")


class AttemptRequest(Shape):
    """The request an attempt sent, as kept: no credentials, secrets masked."""

    method: str
    url: str = Field(description="No user, password or query; a path holding a secret is `…`")
    headers: dict[str, str] = Field(description="Credential headers and secrets `********`")
    body: str
    truncated: bool = Field(description="The body was cut at `PUSHGATE_ATTEMPT_BODY_LIMIT`")


class AttemptResponse(Shape):
    """The receiver's answer to an attempt, as kept (secrets masked)."""

    status: int
    headers: dict[str, str]
    body: str
    truncated: bool


class AttemptEntry(Shape):
    """One attempt of one delivery, a success or a failure."""

    id: int = Field(description="Pass it as `before` for the next page")
    timestamp: int = Field(description=f"When the attempt ended, {UNIX_MS}")
    eventId: str
    attempt: int = Field(description="1 for the first try of the delivery")
    outcome: AttemptOutcome
    statusCode: int | None = Field(None, description="Absent when there was no HTTP answer")
    durationMs: int
    willRetry: bool = Field(description="False after a failure: given up (not retried)")
    nextAt: int | None = Field(
        None, description=f"When the retry is due, {UNIX_MS}; absent while held by the breaker"
    )
    error: str | None = Field(None, description="What happened, beyond the status code")
    hint: str | None = Field(None, description="What to check, after a failure")
    request: AttemptRequest | None = Field(None, description="With `expand=detail`")
    response: AttemptResponse | None = Field(None, description="With `expand=detail`")


class AttemptLog(Shape):
    """A page of a configuration's attempts, newest first."""

    links: PageLinks = Field(alias="_links")
    items: list[AttemptEntry]


class ValidationPost(Shape):
    """The config to validate; a masked secret (`********`) keeps the saved value."""

    config: dict[str, Any]


class ValidationReport(Shape):
    """What the test event came to: `ok`, the HTTP answer, or what happened instead."""

    ok: bool
    statusCode: int | None = Field(None, description="Absent when there was no HTTP answer")
    responseBody: str | None = Field(
        None, description="The receiver's answer, up to PUSHGATE_RESPONSE_BODY_LIMIT bytes"
    )
    error: str | None = None
    hint: str | None = None
    durationMs: int


class ReplayPost(Shape):
    """Which failed deliveries to queue again: event time in [since, until)."""

    since: int | None = Field(None, description=UNIX_MS)
    until: int | None = Field(None, description=UNIX_MS)
    dryRun: bool = Field(False, description="Only count them")


class ReplayResult(Shape):
    """How many failed deliveries matched, and how many were queued."""

    matched: int
    queued: int


# ---- Events ----


class Access(Shape):
    """One action on one resource."""

    action: str = Field(examples=["updateOn"])
    resource: str = Field(examples=["proj/web:env/production:flag/new-checkout"])


class AuditLogEntry(Shape):
    """A LaunchDarkly audit-log entry; every member not listed is kept and passed on."""

    model_config = ConfigDict(extra="allow")

    id: str | None = Field(
        None, alias="_id", description="1 to 64 visible ASCII characters; generated when absent"
    )
    date: int | None = Field(None, description=f"{UNIX_MS}; now when absent")
    kind: str | None = Field(None, examples=["flag"])
    accesses: list[Access] = Field(min_length=1, max_length=100)


class EventBatch(Shape):
    """Several entries at once."""

    items: list[AuditLogEntry] = Field(min_length=1, max_length=1000)


class EventsPost(RootModel[AuditLogEntry | EventBatch]):
    """One audit-log entry, or a batch."""


# An entry every install accepts and the default policy delivers: "Try it out" sends it.
EXAMPLE_ENTRY = {
    "kind": "flag",
    "name": "New checkout",
    "accesses": [{"action": "updateOn", "resource": "proj/web:env/production:flag/new-checkout"}],
    "titleVerb": "turned on the flag",
    "member": {"email": "ana@example.com", "firstName": "Ana", "lastName": "Lopez"},
}
EVENTS_BODY = request_body(
    EventsPost,
    description='One audit-log entry, or `{"items": [...]}` with 1 to 1,000 of them',
    example=EXAMPLE_ENTRY,
)


class EventsAccepted(Shape):
    """The ids of the request's events, which of them were new, and the deliveries made."""

    ids: list[str]
    accepted: list[str] = Field(description="The ids not seen before")
    deliveries: int


# ---- Catalog ----


class FormVariable(Shape):
    """One field of an integration's config."""

    key: str
    label: str
    type: str = Field(description="`string`, `boolean`, `number`, `enum`, `map`, `uri`, ...")
    required: bool
    secret: bool
    description: str | None = None
    placeholder: str | None = None
    choices: list[Any] | None = None
    default: Any = None
    hidden: bool | None = None


class Manifest(Shape):
    """One integration of the catalog."""

    key: str
    name: str
    description: str
    formVariables: list[FormVariable]
    defaultPolicy: list[Statement]


class Manifests(Shape):
    """The catalog."""

    items: list[Manifest]


# ---- Access tokens ----


class TokenPost(Shape):
    """A new access token."""

    name: str = Field(min_length=1, max_length=256)
    role: RoleName = "reader"


class Token(Shape):
    """An access token (never its value)."""

    id: str = Field(alias="_id", description=STORED_ID)
    name: str
    role: RoleName
    creationDate: int = Field(description=UNIX_MS)


class TokenCreated(Token):
    """A new token with its value, shown this once."""

    token: str


class Tokens(Shape):
    """Every access token."""

    items: list[Token]


# ---- Event sources ----


class SourcePost(Shape):
    """A new event source."""

    name: str = Field(min_length=1, max_length=256)
    kind: SourceKindName
    secret: str | None = Field(
        None,
        description=(
            "The signing secret; absent: pushgate generates one. `launchdarkly-webhook`: 16 to 256 "
            "characters; `standard-webhooks`: `whsec_` + base64 of 24 to 64 bytes"
        ),
    )


class SourceLinks(Shape):
    """The source itself, and where senders post."""

    self_: Link = Field(alias="self")
    ingest: Link


class SourceStatus(Shape):
    """What the source has received."""

    eventsReceived: int = Field(description="New events it brought in (repeats not counted)")
    lastEventAt: int | None = Field(None, description=f"The last signed request, {UNIX_MS}")
    lastEventId: str | None = Field(None, description="The `_id` of its last event")


class Source(Shape):
    """An event source: a signed endpoint senders post audit-log entries to."""

    links: SourceLinks = Field(alias="_links")
    id: str = Field(alias="_id", description=STORED_ID)
    name: str
    kind: SourceKindName
    ingestUrl: str = Field(description="Where the sender posts (PUSHGATE_PUBLIC_URL + path)")
    secret: str = Field(description="`********`; the value only in the answer that created it")
    creationDate: int = Field(description=UNIX_MS)
    status: SourceStatus = Field(alias="_status")


class Sources(Shape):
    """Every event source."""

    items: list[Source]


# ---- Operations ----


class Liveness(Shape):
    """The process is up."""

    status: Literal["ok"]


class Readiness(Shape):
    """Whether the database answers."""

    status: Literal["ready", "unavailable"]
    reason: str | None = Field(None, description="Why not, when unavailable")
