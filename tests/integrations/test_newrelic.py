"""New Relic One deployment markers, against a local REST API v2 that enforces its contract."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from conftest import Server
from integrations.conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory
from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.events import build_context, parse_entry
from pushgate.integrations.base import Endpoints
from pushgate.integrations.newrelic import NewRelic

API_KEY = "NRAK-0123456789ABCDEFGHIJKLMNOPQ"
APPLICATION_ID = "1234567890"
LIMITS = {"revision": 127, "changelog": 65_535, "description": 65_535, "user": 31}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


class FakeNewRelic:
    """`POST /v2/applications/{id}/deployments.json` for one account with one application."""

    def __init__(self) -> None:
        self.deployments: dict[str, list[dict[str, Any]]] = {APPLICATION_ID: []}
        self.unavailable = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/applications/{id}/deployments.json", self.create)
        return app

    async def create(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != API_KEY:
            return _error(401, "The API key provided is invalid")
        if self.unavailable:
            return web.Response(
                status=503, text="Service Unavailable", headers={"Retry-After": "30"}
            )
        markers = self.deployments.get(request.match_info["id"])
        if markers is None:
            return _error(404, "Application not found")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "The request body could not be parsed")
        deployment = body.get("deployment") if isinstance(body, dict) else None
        if not isinstance(deployment, dict):
            return _error(422, "deployment is required")
        if problem := _problem(deployment, markers):
            return _error(422, problem)
        markers.append(deployment)
        created = {**deployment, "id": len(markers), "links": {"application": APPLICATION_ID}}
        return web.json_response({"deployment": created}, status=201)


def _problem(deployment: dict[str, Any], markers: list[dict[str, Any]]) -> str | None:
    if not isinstance(deployment.get("revision"), str) or not deployment["revision"]:
        return "revision can't be blank"
    for field, limit in LIMITS.items():
        value = deployment.get(field, "")
        if not isinstance(value, str):
            return f"{field} must be a string"
        if len(value) > limit:
            return f"{field} is too long (maximum is {limit} characters)"
        if any(len(char.encode()) == 4 for char in value):
            return f"{field} contains 4-byte UTF-8 characters"
    timestamp = deployment.get("timestamp")
    if timestamp is not None:
        if not isinstance(timestamp, str) or not TIMESTAMP.fullmatch(timestamp):
            return "timestamp must be ISO 8601 in UTC, like 2019-10-08T00:15:36Z"
        if datetime.fromisoformat(timestamp) > datetime.now(UTC):
            return "timestamp cannot be in the future"
        if any(timestamp < marker.get("timestamp", "") for marker in markers):
            return "timestamp must be after the most recent deployment"
    return None


def _error(status: int, title: str) -> web.Response:
    return web.json_response({"error": {"title": title}}, status=status)


@pytest.fixture
def newrelic() -> FakeNewRelic:
    return FakeNewRelic()


async def send(
    vendor: VendorFactory, fake: FakeNewRelic, entry: dict[str, Any], **config: Any
) -> Any:
    url = await vendor(fake.app())
    settings = {"apiKey": API_KEY, "applicationId": APPLICATION_ID, **config}
    return await Attempt(NewRelic(), {"new-relic-apm": url}).send(settings, entry)


async def test_flag_change_becomes_a_deployment_marker_people_can_read(
    vendor: VendorFactory, newrelic: FakeNewRelic
) -> None:
    assert await send(vendor, newrelic, FLAG_EVENT) is None

    assert newrelic.deployments[APPLICATION_ID] == [
        {
            "revision": "f1",
            "description": "Ana Lopez turned on the flag New checkout in Production "
            "(project Web shop, environment Production): Rolling out to everyone",
            "changelog": "flag new-checkout: updateOn\n"
            "Comment: Rolling out to everyone\n"
            "https://app.example.com/web/production/features/new-checkout",
            "user": "Ana Lopez",
            "timestamp": "2023-11-14T22:13:20Z",
        }
    ]


async def test_project_change_is_its_own_marker(
    vendor: VendorFactory, newrelic: FakeNewRelic
) -> None:
    assert await send(vendor, newrelic, PROJECT_EVENT) is None

    [marker] = newrelic.deployments[APPLICATION_ID]
    assert marker["revision"] == "p1"
    assert marker["description"] == "Bo renamed the project Web shop (project Web shop)"
    assert marker["changelog"] == "project web: updateName"
    assert marker["user"] == "Bo"


async def test_validation_event_is_accepted(vendor: VendorFactory, newrelic: FakeNewRelic) -> None:
    url = await vendor(newrelic.app())
    config = {"apiKey": API_KEY, "applicationId": APPLICATION_ID}

    assert await Attempt(NewRelic(), {"new-relic-apm": url}).validate(config) is None

    [marker] = newrelic.deployments[APPLICATION_ID]
    assert marker["revision"].startswith("pushgate-validation-")
    assert marker["description"].startswith("pushgate connection test")


async def test_emoji_and_long_names_are_made_to_fit_new_relics_limits(
    vendor: VendorFactory, newrelic: FakeNewRelic
) -> None:
    entry = {
        **FLAG_EVENT,
        "comment": "Ship it 🚀",
        "member": {"firstName": "Maximiliana", "lastName": "Hohenzollern-Sigmaringen"},
    }

    assert await send(vendor, newrelic, entry) is None

    [marker] = newrelic.deployments[APPLICATION_ID]
    assert marker["description"].endswith(": Ship it \ufffd")
    assert marker["user"] == "Maximiliana Hohenzollern-Sigma…"
    assert len(marker["user"]) == 31


async def test_rejected_api_key_is_permanent_and_names_api_key_and_domain(
    vendor: VendorFactory, newrelic: FakeNewRelic
) -> None:
    failure = await send(vendor, newrelic, FLAG_EVENT, apiKey="NRAK-WRONG")

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 401
    assert json.loads(failure.response_body or "") == {
        "error": {"title": "The API key provided is invalid"}
    }
    assert failure.hint is not None
    assert "apiKey" in failure.hint
    assert "domain" in failure.hint


async def test_unknown_application_is_permanent_and_names_application_id(
    vendor: VendorFactory, newrelic: FakeNewRelic
) -> None:
    failure = await send(vendor, newrelic, FLAG_EVENT, applicationId="42")

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 404
    assert failure.hint is not None
    assert "applicationId" in failure.hint


async def test_a_change_older_than_the_latest_marker_is_refused_with_a_timestamp_hint(
    vendor: VendorFactory, newrelic: FakeNewRelic
) -> None:
    newrelic.deployments[APPLICATION_ID].append(
        {"revision": "later", "timestamp": "2024-01-01T00:00:00Z"}
    )

    failure = await send(vendor, newrelic, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 422
    assert failure.hint is not None
    assert "timestamp" in failure.hint


async def test_unavailable_api_is_retried_after_the_delay_it_asks(
    vendor: VendorFactory, newrelic: FakeNewRelic
) -> None:
    newrelic.unavailable = True

    failure = await send(vendor, newrelic, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.status_code == 503
    assert failure.retry_after == 30


@pytest.mark.parametrize("domain", ["api.newrelic.com", "api.eu.newrelic.com"])
def test_the_domain_picks_the_us_or_eu_api(domain: str) -> None:
    integration = NewRelic()
    config = integration.parse_config(
        {"apiKey": API_KEY, "applicationId": f" {APPLICATION_ID} ", "domain": domain}
    )
    context = build_context(parse_entry(FLAG_EVENT, now_ms=0))

    request = integration.build_request(context, config, Endpoints())

    assert request.url == f"https://{domain}/v2/applications/{APPLICATION_ID}/deployments.json"
    assert request.headers["X-Api-Key"] == API_KEY


def test_defaults_fill_in_the_us_domain() -> None:
    integration = NewRelic()
    config = integration.parse_config({"apiKey": API_KEY, "applicationId": APPLICATION_ID})

    assert integration.dump_config(config, mask=True) == {
        "apiKey": "********",
        "applicationId": APPLICATION_ID,
        "domain": "api.newrelic.com",
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"applicationId": APPLICATION_ID}, "config.apiKey: Field required"),
        ({"apiKey": API_KEY}, "config.applicationId: Field required"),
        (
            {"apiKey": API_KEY, "applicationId": "checkout-service"},
            "config.applicationId: Value error, must be the numeric application id",
        ),
        (
            {"apiKey": API_KEY, "applicationId": APPLICATION_ID, "domain": "api.newrelic.eu"},
            "config.domain: Input should be 'api.newrelic.com' or 'api.eu.newrelic.com'",
        ),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        NewRelic().parse_config(config)
    assert message in raised.value.message


async def test_launchdarkly_api_creates_a_configuration_with_the_secret_masked(
    server: Server,
) -> None:
    body = {
        "name": "newrelic",
        "on": True,
        "config": {"apiKey": API_KEY, "applicationId": APPLICATION_ID},
    }

    status, created = await server.call("POST", "/api/v2/integrations/new-relic-apm", body)

    assert status == 201, created
    assert created["config"] == {
        "apiKey": "********",
        "applicationId": APPLICATION_ID,
        "domain": "api.newrelic.com",
    }
