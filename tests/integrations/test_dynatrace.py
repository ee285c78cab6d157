"""Dynatrace events, against a local environment that enforces the Events API v2 contract."""

from __future__ import annotations

import json
import re
from typing import Any, get_args

import pytest
from aiohttp import web

from conftest import Server
from integrations.conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory
from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.integrations.dynatrace import Dynatrace, DynatraceEntity, entity_selector

TOKEN = "dt0c01.ABCDEFGHIJKLMNOPQRSTUVWX.0123456789abcdef"
EVENT_TYPES = {
    "AVAILABILITY_EVENT",
    "CUSTOM_ALERT",
    "CUSTOM_ANNOTATION",
    "CUSTOM_CONFIGURATION",
    "CUSTOM_DEPLOYMENT",
    "CUSTOM_INFO",
    "ERROR_EVENT",
    "MARKED_FOR_TERMINATION",
    "PERFORMANCE_EVENT",
    "RESOURCE_CONTENTION_EVENT",
}
SELECTOR = re.compile(r'type\((?P<type>[A-Z_]+)\)(?:,tag\("(?P<tag>(?:~.|[^"~])*)"\))?')


class FakeDynatrace:
    """An environment with a few entities; ingests events the way Events API v2 does."""

    def __init__(self) -> None:
        self.entities = {
            "APPLICATION": [{"tags": {"service:checkout"}}, {"tags": set()}],
            "SERVICE": [{"tags": {"team:payments"}}],
        }
        self.events: list[dict[str, Any]] = []
        self.down = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v2/events/ingest", self.ingest)
        app.router.add_post("/e/{environment}/api/v2/events/ingest", self.ingest)
        return app

    async def ingest(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return _error(401, "Missing authorization parameter.")
        if authorization != f"Api-Token {TOKEN}":
            return _error(401, "Token Authentication failed")
        if self.down:
            return web.Response(status=503, text="Service Unavailable")
        try:
            event = json.loads(await request.read())
        except ValueError:
            return _error(400, "Could not map JSON")
        if violations := _violations(event):
            return _error(400, "Constraints violated.", violations)
        matched = self._select(event.get("entitySelector", ""))
        if matched is None:
            return _error(400, "Invalid entity selector")
        self.events.append(event)
        results = [{"correlationId": f"c{index}", "status": "OK"} for index in range(matched)]
        return web.json_response(
            {"reportCount": matched, "eventIngestResults": results}, status=201
        )

    def _select(self, selector: str) -> int | None:
        match = SELECTOR.fullmatch(selector)
        if match is None:
            return None
        tag = match["tag"]
        candidates = self.entities.get(match["type"], [])
        if tag is None:
            return len(candidates)
        wanted = re.sub(r"~(.)", r"\1", tag)
        return sum(1 for entity in candidates if wanted in entity["tags"])


def _violations(event: object) -> list[dict[str, str]]:
    if not isinstance(event, dict):
        return [{"path": "", "message": "must be an object"}]
    problems = []
    if event.get("eventType") not in EVENT_TYPES:
        problems.append({"path": "eventType", "message": "must be one of the event types"})
    if not isinstance(event.get("title"), str) or not event["title"]:
        problems.append({"path": "title", "message": "must not be empty"})
    for field in ("startTime", "endTime"):
        value = event.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append({"path": field, "message": "must be an integer (UTC milliseconds)"})
    properties = event.get("properties", {})
    if not isinstance(properties, dict) or not all(
        isinstance(value, str) for value in properties.values()
    ):
        problems.append({"path": "properties", "message": "must map names to strings"})
    return problems


def _error(
    status: int, message: str, violations: list[dict[str, str]] | None = None
) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message}
    if violations:
        error["constraintViolations"] = [
            {**violation, "parameterLocation": "PAYLOAD_BODY"} for violation in violations
        ]
    return web.json_response({"error": error}, status=status)


@pytest.fixture
def dynatrace() -> FakeDynatrace:
    return FakeDynatrace()


async def send(
    vendor: VendorFactory, fake: FakeDynatrace, entry: dict[str, Any], **config: Any
) -> Any:
    url = await vendor(fake.app())
    return await Attempt(Dynatrace()).send({"apiToken": TOKEN, "url": url, **config}, entry)


async def test_flag_change_becomes_a_configuration_event_with_readable_properties(
    vendor: VendorFactory, dynatrace: FakeDynatrace
) -> None:
    assert await send(vendor, dynatrace, FLAG_EVENT) is None

    [event] = dynatrace.events
    assert event["eventType"] == "CUSTOM_CONFIGURATION"
    assert event["title"] == "Ana Lopez turned on the flag New checkout in Production"
    assert event["startTime"] == 1_700_000_000_000
    assert event["entitySelector"] == "type(APPLICATION)"
    assert event["properties"] == {
        "Summary": "Ana Lopez turned on the flag New checkout in Production",
        "Kind": "flag",
        "Flag name": "New checkout",
        "Flag key": "new-checkout",
        "Action": "updateOn",
        "Changed by": "Ana Lopez",
        "Changed by email": "ana@example.com",
        "Comment": "Rolling out to everyone",
        "Link": "https://app.example.com/web/production/features/new-checkout",
        "Source": "pushgate",
        "Event id": "f1",
        "Project name": "Web shop",
        "Project key": "web",
        "Environment name": "Production",
        "Environment key": "production",
    }


async def test_project_change_names_the_project_by_the_entrys_name(
    vendor: VendorFactory, dynatrace: FakeDynatrace
) -> None:
    assert await send(vendor, dynatrace, PROJECT_EVENT) is None

    [event] = dynatrace.events
    assert event["title"] == "Bo renamed the project Web shop"
    assert event["properties"]["Project name"] == "Web shop"
    assert event["properties"]["Project key"] == "web"
    assert "Environment name" not in event["properties"]


async def test_tag_narrows_the_entities_and_managed_environments_keep_their_path(
    vendor: VendorFactory, dynatrace: FakeDynatrace
) -> None:
    url = await vendor(dynatrace.app()) + "/e/abc12345/"
    config = {"apiToken": TOKEN, "url": url, "entity": "SERVICE", "tag": "team:payments"}

    assert await Attempt(Dynatrace()).send(config, FLAG_EVENT) is None

    assert dynatrace.events[0]["entitySelector"] == 'type(SERVICE),tag("team:payments")'


async def test_validation_event_is_accepted(
    vendor: VendorFactory, dynatrace: FakeDynatrace
) -> None:
    url = await vendor(dynatrace.app())

    assert await Attempt(Dynatrace()).validate({"apiToken": TOKEN, "url": url}) is None

    [event] = dynatrace.events
    assert event["title"] == "pushgate connection test"
    assert event["properties"]["Action"] == "validateConnection"


async def test_an_event_attached_to_no_entity_is_a_permanent_failure_about_the_selector(
    vendor: VendorFactory, dynatrace: FakeDynatrace
) -> None:
    failure = await send(vendor, dynatrace, FLAG_EVENT, tag="service:missing")

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 201
    assert json.loads(failure.response_body or "")["reportCount"] == 0
    assert failure.hint is not None
    assert "entity" in failure.hint
    assert "tag" in failure.hint


async def test_rejected_token_is_permanent_and_names_api_token(
    vendor: VendorFactory, dynatrace: FakeDynatrace
) -> None:
    url = await vendor(dynatrace.app())

    failure = await Attempt(Dynatrace()).send({"apiToken": "dt0c01.WRONG", "url": url}, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 401
    assert json.loads(failure.response_body or "") == {
        "error": {"code": 401, "message": "Token Authentication failed"}
    }
    assert failure.hint is not None
    assert "apiToken" in failure.hint
    assert "events.ingest" in failure.hint


async def test_unavailable_environment_is_retried(
    vendor: VendorFactory, dynatrace: FakeDynatrace
) -> None:
    dynatrace.down = True

    failure = await send(vendor, dynatrace, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.status_code == 503


@pytest.mark.parametrize(
    ("tag", "selector"),
    [
        (None, "type(HOST)"),
        ("env:prod", 'type(HOST),tag("env:prod")'),
        ('say "hi"~', 'type(HOST),tag("say ~"hi~"~~")'),
    ],
)
def test_entity_selector_quotes_the_tag_and_escapes_with_tilde(
    tag: str | None, selector: str
) -> None:
    assert entity_selector("HOST", tag) == selector


def test_defaults_fill_in_the_application_entity_and_no_tag() -> None:
    integration = Dynatrace()
    config = integration.parse_config(
        {"apiToken": TOKEN, "url": "https://abc12345.live.dynatrace.com", "tag": "  "}
    )

    assert integration.dump_config(config, mask=True) == {
        "apiToken": "********",
        "url": "https://abc12345.live.dynatrace.com",
        "entity": "APPLICATION",
    }


def test_the_form_offers_every_entity_type() -> None:
    [entity] = [field for field in Dynatrace().form() if field["key"] == "entity"]

    assert entity["type"] == "enum"
    assert entity["default"] == "APPLICATION"
    assert entity["choices"] == list(get_args(DynatraceEntity))
    assert {"SERVICE", "HOST", "PROCESS_GROUP", "KUBERNETES_CLUSTER"} <= set(entity["choices"])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "https://abc.live.dynatrace.com"}, "config.apiToken: Field required"),
        ({"apiToken": TOKEN}, "config.url: Field required"),
        ({"apiToken": TOKEN, "url": "abc.live.dynatrace.com"}, "config.url: Value error"),
        (
            {"apiToken": TOKEN, "url": "https://abc.live.dynatrace.com", "entity": "FLAG"},
            "config.entity: Input should be",
        ),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        Dynatrace().parse_config(config)
    assert message in raised.value.message


async def test_launchdarkly_api_creates_a_configuration_with_the_secret_masked(
    server: Server,
) -> None:
    body = {
        "name": "dynatrace",
        "on": True,
        "config": {"apiToken": TOKEN, "url": "https://abc12345.live.dynatrace.com"},
    }

    status, created = await server.call("POST", "/api/v2/integrations/dynatrace", body)

    assert status == 201, created
    assert created["config"] == {
        "apiToken": "********",
        "url": "https://abc12345.live.dynatrace.com",
        "entity": "APPLICATION",
    }


async def test_validate_connection_reports_an_unmatched_selector_with_its_hint(
    server: Server, vendor: VendorFactory, dynatrace: FakeDynatrace
) -> None:
    url = await vendor(dynatrace.app())
    config = {"apiToken": TOKEN, "url": url, "entity": "HOST"}

    status, report = await server.call(
        "POST", "/api/v2/integrations/dynatrace/validate", {"config": config}
    )

    assert status == 200
    assert report["ok"] is False
    assert report["statusCode"] == 201
    assert json.loads(report["responseBody"])["reportCount"] == 0
    assert "entity" in report["hint"]
