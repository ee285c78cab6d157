"""Honeycomb markers, against a local server that enforces the Markers API contract."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from aiohttp import web

from conftest import Server
from integrations.conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory
from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.events import build_context, parse_entry
from pushgate.integrations.base import Endpoints
from pushgate.integrations.honeycomb import Honeycomb

API_KEY = "hcxik_01hqk4k9xmh5p1examplekey"


class FakeHoneycomb:
    """`POST /1/markers/{dataset}` for one environment that holds a few datasets."""

    def __init__(self) -> None:
        self.datasets = {"production", "checkout-service"}
        self.markers: dict[str, list[dict[str, Any]]] = {}
        self.rate_limited = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/1/markers/{dataset}", self.create_marker)
        return app

    async def create_marker(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Honeycomb-Team") != API_KEY:
            return web.json_response(
                {"error": "unknown API key - check your credentials"}, status=401
            )
        if self.rate_limited:
            return _problem(
                429,
                "rate-limited",
                "You have exceeded your rate limit.",
                headers={"RateLimit": "limit=100, remaining=0, reset=42"},
            )
        dataset = request.match_info["dataset"]
        if dataset not in self.datasets and dataset != "__all__":
            return _problem(404, "not-found", "Dataset not found")
        try:
            marker = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "request body should be JSON"}, status=400)
        if problem := _invalid(marker):
            return web.json_response({"error": problem}, status=400)
        created = {**marker, "id": secrets.token_hex(3), "created_at": "2023-11-14T22:13:21Z"}
        self.markers.setdefault(dataset, []).append(marker)
        return web.json_response(created, status=201)


def _invalid(marker: object) -> str | None:
    if not isinstance(marker, dict):
        return "marker must be an object"
    for field in ("start_time", "end_time"):
        value = marker.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{field} must be an integer (Unix seconds)"
    for field in ("message", "type", "url"):
        if field in marker and not isinstance(marker[field], str):
            return f"{field} must be a string"
    unknown = set(marker) - {"start_time", "end_time", "message", "type", "url"}
    if unknown:
        return f"unknown fields: {sorted(unknown)}"
    return None


def _problem(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "status": status,
        "type": f"https://api.honeycomb.io/problems/{kind}",
        "title": message,
        "error": message,
        "detail": message,
    }
    return web.json_response(body, status=status, headers=headers)


@pytest.fixture
def honeycomb() -> FakeHoneycomb:
    return FakeHoneycomb()


async def send(
    vendor: VendorFactory, fake: FakeHoneycomb, entry: dict[str, Any], **config: Any
) -> Any:
    url = await vendor(fake.app())
    settings = {"datasetName": "production", "apiKey": API_KEY, **config}
    return await Attempt(Honeycomb(), {"honeycomb": url}).send(settings, entry)


async def test_flag_change_becomes_a_marker_saying_who_what_where_and_why(
    vendor: VendorFactory, honeycomb: FakeHoneycomb
) -> None:
    assert await send(vendor, honeycomb, FLAG_EVENT) is None

    assert honeycomb.markers["production"] == [
        {
            "message": "Ana Lopez turned on the flag New checkout in Production "
            "[Web shop / Production]: Rolling out to everyone",
            "type": "flag change",
            "start_time": 1_700_000_000,
            "url": "https://app.example.com/web/production/features/new-checkout",
        }
    ]


async def test_project_change_is_a_marker_of_its_own_type_without_a_link(
    vendor: VendorFactory, honeycomb: FakeHoneycomb
) -> None:
    assert await send(vendor, honeycomb, PROJECT_EVENT, datasetName="__all__") is None

    [marker] = honeycomb.markers["__all__"]
    assert marker["message"] == "Bo renamed the project Web shop [Web shop]"
    assert marker["type"] == "project change"
    assert "url" not in marker


async def test_validation_event_is_accepted(
    vendor: VendorFactory, honeycomb: FakeHoneycomb
) -> None:
    url = await vendor(honeycomb.app())
    config = {"datasetName": "checkout-service", "apiKey": API_KEY}

    assert await Attempt(Honeycomb(), {"honeycomb": url}).validate(config) is None

    [marker] = honeycomb.markers["checkout-service"]
    assert marker["message"].startswith("pushgate connection test [pushgate / test]")


async def test_rejected_api_key_is_permanent_and_names_api_key_and_region(
    vendor: VendorFactory, honeycomb: FakeHoneycomb
) -> None:
    failure = await send(vendor, honeycomb, FLAG_EVENT, apiKey="hcxik_wrong")

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 401
    assert "unknown API key" in (failure.response_body or "")
    assert failure.hint is not None
    assert "apiKey" in failure.hint
    assert "hostURL" in failure.hint


async def test_missing_dataset_is_permanent_and_names_dataset_name(
    vendor: VendorFactory, honeycomb: FakeHoneycomb
) -> None:
    failure = await send(vendor, honeycomb, FLAG_EVENT, datasetName="Production Service")

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 404
    assert json.loads(failure.response_body or "")["error"] == "Dataset not found"
    assert failure.hint is not None
    assert "datasetName" in failure.hint
    assert honeycomb.markers == {}


async def test_rate_limit_is_retried_when_the_window_resets(
    vendor: VendorFactory, honeycomb: FakeHoneycomb
) -> None:
    honeycomb.rate_limited = True

    failure = await send(vendor, honeycomb, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.status_code == 429
    assert failure.retry_after == 42


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "https://api.honeycomb.io/1/markers/my%20dataset"),
        ("https://api.eu1.honeycomb.io", "https://api.eu1.honeycomb.io/1/markers/my%20dataset"),
    ],
)
def test_us_is_the_default_host_and_eu_teams_can_choose_theirs(host: str | None, url: str) -> None:
    integration = Honeycomb()
    settings = {"datasetName": " my dataset ", "apiKey": API_KEY, "hostURL": host}
    config = integration.parse_config({k: v for k, v in settings.items() if v is not None})
    context = build_context(parse_entry(FLAG_EVENT, now_ms=0))

    request = integration.build_request(context, config, Endpoints())

    assert request.url == url
    assert request.headers["X-Honeycomb-Team"] == API_KEY


def test_stored_config_has_only_launchdarklys_fields_when_no_region_is_chosen() -> None:
    integration = Honeycomb()
    config = integration.parse_config({"datasetName": "production", "apiKey": API_KEY})

    assert integration.dump_config(config, mask=True) == {
        "datasetName": "production",
        "apiKey": "********",
    }
    [region] = [field for field in integration.form() if field["key"] == "hostURL"]
    assert region["required"] is False
    assert region["choices"] == ["https://api.honeycomb.io", "https://api.eu1.honeycomb.io"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"apiKey": API_KEY}, "config.datasetName: Field required"),
        ({"datasetName": "production"}, "config.apiKey: Field required"),
        ({"datasetName": "  ", "apiKey": API_KEY}, "config.datasetName: Value error"),
        (
            {"datasetName": "p", "apiKey": API_KEY, "hostURL": "https://api.honeycomb.eu"},
            "config.hostURL: Input should be",
        ),
    ],
)
def test_config_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        Honeycomb().parse_config(config)
    assert message in raised.value.message


async def test_launchdarkly_api_creates_a_configuration_with_the_secret_masked(
    server: Server,
) -> None:
    body = {
        "name": "honeycomb",
        "on": True,
        "config": {"datasetName": "production", "apiKey": API_KEY},
    }

    status, created = await server.call("POST", "/api/v2/integrations/honeycomb", body)

    assert status == 201, created
    assert created["config"] == {"datasetName": "production", "apiKey": "********"}
