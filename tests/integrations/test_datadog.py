"""Datadog events, against a local server that enforces the v1 Post-an-event contract."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from aiohttp import web

from conftest import Server
from integrations.conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory
from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.events import build_context, parse_entry
from pushgate.integrations.base import Endpoints
from pushgate.integrations.datadog import TEXT_LIMIT, Datadog, DatadogSite

API_KEY = "0123456789abcdef0123456789abcdef"
ALERT_TYPES = {"error", "warning", "info", "success", "user_update", "recommendation", "snapshot"}


class FakeDatadog:
    """`POST /api/v1/events`: checks the API key and the event body like Datadog does."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.rate_limited = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/events", self.post_event)
        return app

    async def post_event(self, request: web.Request) -> web.Response:
        if request.headers.get("DD-API-KEY") != API_KEY:
            return _errors(403, "Forbidden")
        if self.rate_limited:
            headers = {
                "X-RateLimit-Limit": "1000",
                "X-RateLimit-Period": "60",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "17",
            }
            return _errors(429, "Too many requests", headers=headers)
        if request.content_type != "application/json":
            return _errors(400, "Content-Type must be application/json")
        try:
            event = json.loads(await request.read())
        except ValueError:
            return _errors(400, "Invalid JSON")
        if problem := _problem(event):
            return _errors(400, problem)
        self.events.append(event)
        answer = {"status": "ok", "event": {"id": len(self.events), **event}}
        return web.json_response(answer, status=202)


def _problem(event: object) -> str | None:
    if not isinstance(event, dict):
        return "Request body must be an object"
    for field in ("title", "text"):
        if not isinstance(event.get(field), str) or not event[field]:
            return f"Event {field} is required"
    if len(event["text"]) > TEXT_LIMIT:
        return "Event text is longer than 4000 characters"
    when = event.get("date_happened")
    if when is not None and (isinstance(when, bool) or not isinstance(when, int)):
        return "date_happened must be an integer"
    tags = event.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return "tags must be a list of strings"
    if len(event.get("aggregation_key", "")) > 100:
        return "aggregation_key is longer than 100 characters"
    if event.get("alert_type", "info") not in ALERT_TYPES:
        return "Invalid alert_type"
    return None


def _errors(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"errors": [message]}, status=status, headers=headers)


@pytest.fixture
def datadog() -> FakeDatadog:
    return FakeDatadog()


async def send(
    vendor: VendorFactory, fake: FakeDatadog, entry: dict[str, Any], **config: Any
) -> Any:
    url = await vendor(fake.app())
    return await Attempt(Datadog(), {"datadog": url}).send({"apiKey": API_KEY, **config}, entry)


async def test_flag_change_becomes_an_event_with_markdown_text_and_key_value_tags(
    vendor: VendorFactory, datadog: FakeDatadog
) -> None:
    assert await send(vendor, datadog, FLAG_EVENT) is None

    [event] = datadog.events
    assert event["title"] == "Ana Lopez turned on the flag New checkout in Production"
    assert event["date_happened"] == 1_700_000_000
    text = event["text"]
    assert text.startswith("%%% \n")
    assert text.endswith("\n %%%")
    assert "[Ana Lopez](mailto:ana@example.com) turned on the flag" in text
    assert "**Project:** Web shop · **Environment:** Production" in text
    assert "> Rolling out to everyone" in text
    assert "(https://app.example.com/web/production/features/new-checkout)" in text
    assert event["tags"] == [
        "kind:flag",
        "action:updateOn",
        "project_key:web",
        "environment_key:production",
        "flag_key:new-checkout",
        "member:ana@example.com",
    ]
    assert all(":" in tag for tag in event["tags"])
    assert event["aggregation_key"] == "proj/web:env/production:flag/new-checkout"


async def test_hidden_member_details_leave_no_name_or_email_in_title_text_or_tags(
    vendor: VendorFactory, datadog: FakeDatadog
) -> None:
    entry = {**FLAG_EVENT, "comment": "Ana Lopez says: ping ana@example.com if it breaks"}

    assert await send(vendor, datadog, entry, hideMemberDetails=True) is None

    [event] = datadog.events
    assert event["title"] == "Someone turned on the flag New checkout in Production"
    everything = json.dumps(event).lower()
    for secret in ("ana", "lopez", "ana@example.com"):
        assert secret not in everything.replace("someone", "")
    assert "> Someone says: ping Someone if it breaks" in event["text"]
    assert "flag_key:new-checkout" in event["tags"]


async def test_project_change_is_tagged_with_its_project_only(
    vendor: VendorFactory, datadog: FakeDatadog
) -> None:
    assert await send(vendor, datadog, PROJECT_EVENT) is None

    [event] = datadog.events
    assert event["title"] == "Bo renamed the project Web shop"
    # The entry names no `project` object, so the project is shown by its key.
    assert "**Project:** Web shop" in event["text"]
    assert "Environment" not in event["text"]
    assert event["tags"] == [
        "kind:project",
        "action:updateName",
        "project_key:web",
        "member:bo@example.com",
    ]


async def test_validation_event_is_accepted(vendor: VendorFactory, datadog: FakeDatadog) -> None:
    url = await vendor(datadog.app())

    assert await Attempt(Datadog(), {"datadog": url}).validate({"apiKey": API_KEY}) is None

    [event] = datadog.events
    assert event["title"] == "pushgate connection test"
    assert "action:validateConnection" in event["tags"]


async def test_rejected_api_key_is_permanent_and_names_api_key_and_site(
    vendor: VendorFactory, datadog: FakeDatadog
) -> None:
    url = await vendor(datadog.app())

    failure = await Attempt(Datadog(), {"datadog": url}).send({"apiKey": "f" * 32}, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 403
    assert json.loads(failure.response_body or "") == {"errors": ["Forbidden"]}
    assert failure.hint is not None
    assert "apiKey" in failure.hint
    assert "hostURL" in failure.hint
    assert datadog.events == []


async def test_rate_limit_is_retried_after_the_window_datadog_announces(
    vendor: VendorFactory, datadog: FakeDatadog
) -> None:
    datadog.rate_limited = True

    failure = await send(vendor, datadog, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.status_code == 429
    assert failure.retry_after == 17


async def test_a_comment_of_several_lines_is_quoted_line_by_line(
    vendor: VendorFactory, datadog: FakeDatadog
) -> None:
    entry = {**FLAG_EVENT, "comment": "Rolling out\nto everyone"}

    assert await send(vendor, datadog, entry) is None

    assert "\n> Rolling out\n> to everyone\n" in datadog.events[0]["text"]


async def test_long_details_are_cut_to_datadogs_text_limit(
    vendor: VendorFactory, datadog: FakeDatadog
) -> None:
    entry = {**FLAG_EVENT, "description": "word " * 2000}

    assert await send(vendor, datadog, entry) is None

    [event] = datadog.events
    assert len(event["text"]) == TEXT_LIMIT
    assert event["text"].endswith("…\n %%%")


@pytest.mark.parametrize("site", get_args(DatadogSite))
def test_every_datadog_site_is_accepted_and_posted_to(site: str) -> None:
    integration = Datadog()
    config = integration.parse_config({"apiKey": API_KEY, "hostURL": site})
    context = build_context(parse_entry(FLAG_EVENT, now_ms=0))

    request = integration.build_request(context, config, Endpoints())

    assert request.url == f"{site}/api/v1/events"
    assert request.headers["DD-API-KEY"] == API_KEY


def test_defaults_are_filled_in_us1_and_member_details_shown() -> None:
    integration = Datadog()
    config = integration.parse_config({"apiKey": API_KEY})

    assert integration.dump_config(config, mask=True) == {
        "apiKey": "********",
        "hostURL": "https://api.datadoghq.com",
        "hideMemberDetails": False,
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "config.apiKey: Field required"),
        ({"apiKey": API_KEY, "hostURL": "https://evil.example.com"}, "config.hostURL: Input"),
        ({"apiKey": API_KEY, "region": "eu"}, "config.region: unknown field"),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        Datadog().parse_config(config)
    assert message in raised.value.message


async def test_launchdarkly_api_creates_a_configuration_with_the_secret_masked(
    server: Server,
) -> None:
    body = {"name": "datadog", "on": True, "config": {"apiKey": API_KEY}}

    status, created = await server.call("POST", "/api/v2/integrations/datadog", body)

    assert status == 201, created
    assert created["config"] == {
        "apiKey": "********",
        "hostURL": "https://api.datadoghq.com",
        "hideMemberDetails": False,
    }
