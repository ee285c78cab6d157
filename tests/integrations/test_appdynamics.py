"""AppDynamics adapter against a local controller: OAuth client credentials, then the Events API."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from conftest import Server, flag_event
from pushgate.clock import ManualClock
from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.integrations.appdynamics import AppDynamics

from .conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory

ACCOUNT = "acme"
CLIENT = "pushgate"
SECRET = "b7d3c2a0-1111-4222-8333-944455556666"
APPLICATIONS = {"42", "Web shop"}
EVENT_TYPES = {"APPLICATION_DEPLOYMENT", "APPLICATION_CONFIG_CHANGE", "CUSTOM"}
SEVERITIES = {"INFO", "WARN", "ERROR"}
FORM_TYPES = {"application/x-www-form-urlencoded", "application/vnd.appd.cntrl+protobuf"}
# aiohttp, like most servers, refuses request lines longer than this.
MAX_REQUEST_LINE = 8190


class Controller:
    """An AppDynamics controller with one API client and two applications."""

    def __init__(self) -> None:
        self.grants = 0
        self.valid_tokens: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.event_posts = 0
        self.token_script: list[web.Response] = []
        self.event_script: list[web.Response] = []
        self.lifetime = 300

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/controller/api/oauth/access_token", self.token)
        app.router.add_post("/controller/rest/applications/{application}/events", self.event)
        return app

    def revoke_all(self) -> None:
        self.valid_tokens.clear()

    async def token(self, request: web.Request) -> web.Response:
        if self.token_script:
            return self.token_script.pop(0)
        if request.content_type not in FORM_TYPES:
            return web.Response(status=415, text="Unsupported Media Type")
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.Response(status=400, text="unsupported grant_type")
        if form.get("client_id") != f"{CLIENT}@{ACCOUNT}" or form.get("client_secret") != SECRET:
            return web.Response(status=401, text="Failed to authenticate: invalid credentials")
        self.grants += 1
        token = f"token-{self.grants}"
        self.valid_tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": self.lifetime})

    async def event(self, request: web.Request) -> web.Response:
        self.event_posts += 1
        if self.event_script:
            return self.event_script.pop(0)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.valid_tokens:
            return web.Response(status=401, text="Unauthorized")
        application = request.match_info["application"]
        if application not in APPLICATIONS:
            return web.Response(status=400, text=f"Invalid application id {application}")
        query = request.query
        summary = query.get("summary")
        if not summary:
            return web.Response(status=400, text="summary is required")
        if query.get("eventtype") not in EVENT_TYPES:
            return web.Response(status=400, text="invalid eventtype")
        if query.get("eventtype") == "CUSTOM" and not query.get("customeventtype"):
            return web.Response(status=400, text="customeventtype is required for CUSTOM")
        if query.get("severity") not in SEVERITIES:
            return web.Response(status=400, text="invalid severity")
        names, values = query.getall("propertynames", []), query.getall("propertyvalues", [])
        if len(names) != len(values):
            return web.Response(status=400, text="propertynames and propertyvalues must pair")
        self.events.append(
            {
                "application": application,
                "summary": summary,
                "comment": query.get("comment"),
                "eventtype": query["eventtype"],
                "customeventtype": query.get("customeventtype"),
                "severity": query["severity"],
                "properties": dict(zip(names, values, strict=True)),
                "token": token,
                "request_line": len(request.raw_path) + len("POST  HTTP/1.1"),
            }
        )
        return web.Response(text=f"Successfully created the event id:{len(self.events)}")


async def start(vendor: VendorFactory, **overrides: Any) -> tuple[Controller, dict[str, Any]]:
    controller = Controller()
    base = await vendor(controller.app())
    config = {
        "account": ACCOUNT,
        "applicationID": "42",
        "controllerURL": base,
        "clientName": CLIENT,
        "clientSecret": SECRET,
        **overrides,
    }
    return controller, config


async def test_flag_event_becomes_a_custom_event_with_summary_comment_and_properties(
    vendor: VendorFactory,
) -> None:
    controller, config = await start(vendor)

    assert await Attempt(AppDynamics()).send(config, FLAG_EVENT) is None

    [event] = controller.events
    assert event["application"] == "42"
    assert event["summary"] == "Ana Lopez turned on the flag New checkout in Production"
    assert event["comment"] == "Rolling out to everyone"
    assert (event["eventtype"], event["customeventtype"], event["severity"]) == (
        "CUSTOM",
        "pushgate",
        "INFO",
    )
    assert event["properties"] == {
        "kind": "flag",
        "action": "updateOn",
        "project": "Web shop",
        "project_key": "web",
        "environment": "Production",
        "environment_key": "production",
        "key": "new-checkout",
        "user": "Ana Lopez",
        "user_email": "ana@example.com",
        "url": "https://app.example.com/web/production/features/new-checkout",
        "event_id": "f1",
    }


async def test_project_event_to_an_application_named_with_a_space(vendor: VendorFactory) -> None:
    controller, config = await start(vendor, applicationID="Web shop")

    assert await Attempt(AppDynamics()).send(config, PROJECT_EVENT) is None

    [event] = controller.events
    assert event["application"] == "Web shop"
    assert event["summary"] == "Bo renamed the project Web shop"
    assert event["comment"] is None
    assert "environment" not in event["properties"]


async def test_validation_event_is_recorded(vendor: VendorFactory) -> None:
    controller, config = await start(vendor)

    assert await Attempt(AppDynamics()).validate(config) is None

    assert controller.events[0]["properties"]["action"] == "validateConnection"


async def test_token_is_fetched_once_for_two_deliveries(vendor: VendorFactory) -> None:
    controller, config = await start(vendor)
    attempt = Attempt(AppDynamics())

    assert await attempt.send(config, FLAG_EVENT) is None
    assert await attempt.send(config, PROJECT_EVENT) is None

    assert controller.grants == 1
    assert [event["token"] for event in controller.events] == ["token-1", "token-1"]


async def test_token_is_renewed_shortly_before_it_expires(vendor: VendorFactory) -> None:
    controller, config = await start(vendor)
    clock = ManualClock()
    attempt = Attempt(AppDynamics(clock=clock))

    assert await attempt.send(config, FLAG_EVENT) is None
    clock.advance(260)  # of 300 s: still well inside the lifetime
    assert await attempt.send(config, FLAG_EVENT) is None
    clock.advance(15)  # 275 s: within the last 30 s, renew before it dies in flight
    assert await attempt.send(config, FLAG_EVENT) is None

    assert controller.grants == 2
    assert [event["token"] for event in controller.events] == ["token-1", "token-1", "token-2"]


async def test_a_refused_token_is_refreshed_once_and_the_event_resent(
    vendor: VendorFactory,
) -> None:
    controller, config = await start(vendor)
    attempt = Attempt(AppDynamics())
    assert await attempt.send(config, FLAG_EVENT) is None
    controller.revoke_all()  # e.g. the API client's tokens were revoked in the controller

    assert await attempt.send(config, PROJECT_EVENT) is None

    assert controller.grants == 2
    assert controller.event_posts == 3
    assert controller.events[-1]["token"] == "token-2"


async def test_a_401_that_survives_a_fresh_token_is_permanent_and_not_retried_again(
    vendor: VendorFactory,
) -> None:
    controller, config = await start(vendor)
    refused = "User does not have permission to create events"
    controller.event_script += [web.Response(status=401, text=refused) for _ in range(2)]

    failure = await Attempt(AppDynamics()).send(config, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 401
    assert failure.response_body == refused
    assert failure.hint is not None
    assert "clientName" in failure.hint
    assert controller.grants == 2
    assert controller.event_posts == 2


async def test_token_endpoint_refusing_the_client_is_permanent_and_names_the_fields(
    vendor: VendorFactory,
) -> None:
    controller, config = await start(vendor, clientSecret="wrong-secret")

    failure = await Attempt(AppDynamics()).send(config, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 401
    assert failure.description == "token request: HTTP 401"
    assert failure.hint is not None
    for field in ("clientName", "clientSecret", "account"):
        assert field in failure.hint
    assert controller.event_posts == 0


async def test_token_endpoint_failing_is_retryable(vendor: VendorFactory) -> None:
    controller, config = await start(vendor)
    controller.token_script.append(web.Response(status=503, headers={"Retry-After": "20"}))

    failure = await Attempt(AppDynamics()).send(config, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.retry_after == 20
    assert controller.event_posts == 0


async def test_a_token_answer_without_a_token_points_at_the_controller_url(
    vendor: VendorFactory,
) -> None:
    controller, config = await start(vendor)
    controller.token_script.append(web.Response(text="<html>login</html>"))

    failure = await Attempt(AppDynamics()).send(config, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.hint is not None
    assert "controllerURL" in failure.hint


async def test_different_configurations_never_share_a_token(vendor: VendorFactory) -> None:
    controller, config = await start(vendor)
    other = {**config, "applicationID": "Web shop"}
    attempt = Attempt(AppDynamics())

    assert await attempt.send(config, FLAG_EVENT) is None
    assert await attempt.send(other, FLAG_EVENT) is None
    assert await attempt.send(config, FLAG_EVENT) is None

    assert controller.grants == 2
    assert [event["token"] for event in controller.events] == ["token-1", "token-2", "token-1"]


async def test_unknown_application_is_permanent_and_names_application_id(
    vendor: VendorFactory,
) -> None:
    _, config = await start(vendor, applicationID="99")

    failure = await Attempt(AppDynamics()).send(config, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 400
    assert failure.hint is not None
    assert "applicationID" in failure.hint


async def test_long_texts_are_cut_to_keep_the_request_line_acceptable(
    vendor: VendorFactory,
) -> None:
    controller, config = await start(vendor)
    entry = {**FLAG_EVENT, "comment": "变更" * 5_000, "description": "d" * 50_000}

    assert await Attempt(AppDynamics()).send(config, entry) is None

    [event] = controller.events
    assert event["request_line"] < MAX_REQUEST_LINE
    assert event["comment"].startswith("变更")
    assert event["comment"].endswith("…")
    assert event["summary"] == "Ana Lopez turned on the flag New checkout in Production"


def test_config_without_fields_is_refused_naming_each() -> None:
    with pytest.raises(InvalidRequest) as caught:
        AppDynamics().parse_config({})

    for field in ("account", "applicationID", "controllerURL", "clientName", "clientSecret"):
        assert f"config.{field}: Field required" in caught.value.message


def test_config_takes_the_controller_ui_address_as_the_controller_url() -> None:
    appdynamics = AppDynamics()
    config = appdynamics.parse_config(
        {
            "account": ACCOUNT,
            "applicationID": "42",
            "controllerURL": "https://acme.saas.appdynamics.com/controller/",
            "clientName": CLIENT,
            "clientSecret": SECRET,
        }
    )

    dumped = appdynamics.dump_config(config, mask=True)
    assert dumped["controllerURL"] == "https://acme.saas.appdynamics.com"
    assert dumped["clientSecret"] == "********"


def test_config_refuses_a_client_name_that_already_names_the_account() -> None:
    with pytest.raises(InvalidRequest, match=r"config\.clientName: .*@"):
        AppDynamics().parse_config(
            {
                "account": ACCOUNT,
                "applicationID": "42",
                "controllerURL": "https://acme.saas.appdynamics.com",
                "clientName": f"{CLIENT}@{ACCOUNT}",
                "clientSecret": SECRET,
            }
        )


async def test_worker_deliveries_share_one_token_through_the_catalog(
    server: Server, vendor: VendorFactory
) -> None:
    controller, config = await start(vendor)
    body = {"name": "appd", "on": True, "config": config}
    status, created = await server.call("POST", "/api/v2/integrations/appdynamics", body)
    assert status == 201, created
    assert created["config"]["clientSecret"] == "********"

    await server.call("POST", "/api/v2/events", flag_event("e1"))
    await server.call("POST", "/api/v2/events", flag_event("e2"))
    assert await server.deliver() == 2

    assert controller.grants == 1
    assert sorted(event["properties"]["event_id"] for event in controller.events) == ["e1", "e2"]
