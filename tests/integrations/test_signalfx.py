"""Splunk Observability Cloud adapter against a local ingest API that checks the event contract."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aiohttp import web

from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.events import build_context, parse_entry
from pushgate.integrations.base import Endpoints
from pushgate.integrations.signalfx import SignalFx

from .conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory

TOKEN = "sfx-ingest-token-0123"
CATEGORIES = {
    "USER_DEFINED",
    "ALERT",
    "AUDIT",
    "JOB",
    "COLLECTD",
    "SERVICE_DISCOVERY",
    "EXCEPTION",
    "AGENT",
}
DIMENSION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}")
# Milliseconds since the epoch are at least this large for any date after 2001.
MIN_MILLISECONDS = 1_000_000_000_000


def event_problem(event: Any) -> str | None:
    """What breaks the documented event shape, or None."""
    if not isinstance(event, dict):
        return "event must be an object"
    if not isinstance(event.get("eventType"), str) or not event["eventType"]:
        return "eventType is required"
    if "category" in event and event["category"] not in CATEGORIES:
        return "unknown category"
    timestamp = event.get("timestamp")
    if timestamp is not None and (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int)
        or timestamp < MIN_MILLISECONDS
    ):
        return "timestamp must be epoch milliseconds"
    for name, value in (event.get("dimensions") or {}).items():
        if not DIMENSION_NAME.fullmatch(name) or name.startswith("sf_"):
            return f"invalid dimension name {name}"
        if not isinstance(value, str) or len(value) > 256:
            return f"invalid dimension value for {name}"
    for name, value in (event.get("properties") or {}).items():
        if not isinstance(value, str | int | float | bool):
            return f"invalid property value for {name}"
    return None


class Ingest:
    """The ingest endpoint of one organization: one token, events as a JSON array."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.script: list[web.Response] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/event", self.event)
        return app

    async def event(self, request: web.Request) -> web.Response:
        if self.script:
            return self.script.pop(0)
        if request.headers.get("X-SF-Token") != TOKEN:
            return web.Response(status=401, text="Unauthorized")
        if request.content_type != "application/json":
            return web.Response(status=415, text="Unsupported Media Type")
        try:
            events = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="Unable to process request")
        if not isinstance(events, list):
            return web.Response(status=400, text="Expected a JSON array of events")
        for event in events:
            problem = event_problem(event)
            if problem:
                return web.Response(status=400, text=problem)
        self.events.extend(events)
        return web.json_response("OK")


async def start(vendor: VendorFactory) -> tuple[Ingest, Attempt]:
    ingest = Ingest()
    base = await vendor(ingest.app())
    return ingest, Attempt(SignalFx(), {"signalfx": base})


CONFIG = {"accessToken": TOKEN, "realm": "us1"}


async def test_flag_event_has_filterable_dimensions_and_readable_properties(
    vendor: VendorFactory,
) -> None:
    ingest, attempt = await start(vendor)

    assert await attempt.send(CONFIG, FLAG_EVENT) is None

    [event] = ingest.events
    assert event["eventType"] == "pushgate_change"
    assert event["category"] == "USER_DEFINED"
    assert event["timestamp"] == 1_700_000_000_000
    assert event["dimensions"] == {
        "source": "pushgate",
        "kind": "flag",
        "action": "updateOn",
        "project_key": "web",
        "environment_key": "production",
        "flag_key": "new-checkout",
    }
    assert event["properties"] == {
        "message": "Ana Lopez turned on the flag New checkout in Production",
        "name": "New checkout",
        "event_id": "f1",
        "user": "Ana Lopez",
        "user_email": "ana@example.com",
        "comment": "Rolling out to everyone",
        "project": "Web shop",
        "environment": "Production",
        "url": "https://app.example.com/web/production/features/new-checkout",
    }


async def test_project_event_has_no_environment_and_no_second_key(vendor: VendorFactory) -> None:
    ingest, attempt = await start(vendor)

    assert await attempt.send(CONFIG, PROJECT_EVENT) is None

    [event] = ingest.events
    assert event["dimensions"] == {
        "source": "pushgate",
        "kind": "project",
        "action": "updateName",
        "project_key": "web",
    }
    assert event["properties"]["message"] == "Bo renamed the project Web shop"


async def test_validation_event_is_accepted(vendor: VendorFactory) -> None:
    ingest, attempt = await start(vendor)

    assert await attempt.validate(CONFIG) is None

    assert ingest.events[0]["dimensions"]["action"] == "validateConnection"


async def test_wrong_token_is_permanent_and_the_hint_names_access_token_and_realm(
    vendor: VendorFactory,
) -> None:
    _, attempt = await start(vendor)

    failure = await attempt.send({**CONFIG, "accessToken": "stale-token-value"}, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 401
    assert failure.hint is not None
    assert "accessToken" in failure.hint
    assert "realm" in failure.hint


async def test_throttling_is_retryable(vendor: VendorFactory) -> None:
    ingest, attempt = await start(vendor)
    ingest.script.append(web.Response(status=429, headers={"Retry-After": "12"}))

    failure = await attempt.send(CONFIG, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.retry_after == 12


async def test_unusual_kind_still_gives_a_valid_dimension_name(vendor: VendorFactory) -> None:
    ingest, attempt = await start(vendor)
    entry = {
        "_id": "x1",
        "kind": "9 odd kind",
        "accesses": [{"action": "update", "resource": "proj/web:env/dev:thing/abc"}],
    }

    assert await attempt.send(CONFIG, entry) is None

    assert ingest.events[0]["dimensions"]["resource_key"] == "abc"


def test_default_address_is_the_ingest_host_of_the_realm() -> None:
    signalfx = SignalFx()
    context = build_context(parse_entry(FLAG_EVENT, now_ms=0))
    config = signalfx.parse_config({**CONFIG, "realm": " EU0 "})

    request = signalfx.build_request(context, config, Endpoints())

    assert request.url == "https://ingest.eu0.signalfx.com/v2/event"
    assert request.headers["X-SF-Token"] == TOKEN


def test_config_without_fields_is_refused_naming_both() -> None:
    with pytest.raises(InvalidRequest) as caught:
        SignalFx().parse_config({})

    assert "config.accessToken: Field required" in caught.value.message
    assert "config.realm: Field required" in caught.value.message


@pytest.mark.parametrize("realm", ["us-1", "ingest.us1.signalfx.com", "us", "1us", ""])
def test_config_refuses_what_is_not_a_realm_name(realm: str) -> None:
    with pytest.raises(InvalidRequest, match=r"config\.realm: .*realm name"):
        SignalFx().parse_config({**CONFIG, "realm": realm})
