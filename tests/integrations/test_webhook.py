"""Generic webhook adapter: Standard Webhooks signatures and custom headers, against a receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from aiohttp import web

from pushgate.errors import InvalidRequest, PermanentDeliveryError, RetryableDeliveryError
from pushgate.integrations.webhook import Webhook

from .conftest import FLAG_EVENT, PROJECT_EVENT, Attempt, VendorFactory

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
BEARER = "Bearer s3cr3t-token"


class Receiver:
    """A service that verifies the signature and, like many, wants a bearer token."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], web.Request]] = []
        self.script: list[web.Response] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hooks/pushgate", self.post)
        return app

    async def post(self, request: web.Request) -> web.Response:
        if self.script:
            return self.script.pop(0)
        if request.headers.get("Authorization") != BEARER:
            return web.json_response({"error": "invalid bearer token"}, status=401)
        body = await request.read()
        message_id = request.headers["webhook-id"]
        timestamp = request.headers["webhook-timestamp"]
        key = base64.b64decode(SECRET.removeprefix("whsec_"))
        digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
        expected = "v1," + base64.b64encode(digest.digest()).decode()
        if request.headers.get("webhook-signature") != expected:
            return web.json_response({"error": "bad signature"}, status=400)
        self.received.append((json.loads(body), request))
        return web.Response(status=204)


async def start(vendor: VendorFactory, **extra: Any) -> tuple[Receiver, dict[str, Any]]:
    receiver = Receiver()
    base = await vendor(receiver.app())
    config = {
        "url": base + "/hooks/pushgate",
        "secret": SECRET,
        "authorization": BEARER,
        "headers": {"X-Routing-Key": "platform", "X-Team": "sre"},
        **extra,
    }
    return receiver, config


async def test_flag_event_arrives_signed_with_the_custom_headers_and_bearer_token(
    vendor: VendorFactory,
) -> None:
    receiver, config = await start(vendor)

    assert await Attempt(Webhook()).send(config, FLAG_EVENT) is None

    [(body, request)] = receiver.received
    assert body["_id"] == "f1"
    assert body["comment"] == "Rolling out to everyone"
    assert request.headers["X-Routing-Key"] == "platform"
    assert request.headers["X-Team"] == "sre"
    assert request.headers["Content-Type"] == "application/json"


async def test_project_event_and_validation_event_arrive(vendor: VendorFactory) -> None:
    receiver, config = await start(vendor)

    assert await Attempt(Webhook()).send(config, PROJECT_EVENT) is None
    assert await Attempt(Webhook()).validate(config) is None

    assert [body["kind"] for body, _ in receiver.received] == ["project", "flag"]
    assert receiver.received[1][0]["name"] == "pushgate connection test"


async def test_a_custom_user_agent_replaces_pushgates_own(vendor: VendorFactory) -> None:
    receiver, config = await start(vendor, headers={"user-agent": "acme-relay/2"})

    assert await Attempt(Webhook()).send(config, FLAG_EVENT) is None

    request = receiver.received[0][1]
    assert request.headers.getall("User-Agent") == ["acme-relay/2"]


async def test_wrong_bearer_token_is_permanent_with_the_receivers_answer(
    vendor: VendorFactory,
) -> None:
    _, config = await start(vendor, authorization="Bearer old")

    failure = await Attempt(Webhook()).send(config, FLAG_EVENT)

    assert isinstance(failure, PermanentDeliveryError)
    assert failure.status_code == 401
    assert failure.response_body == '{"error": "invalid bearer token"}'
    assert failure.hint is not None


async def test_receiver_failing_is_retryable(vendor: VendorFactory) -> None:
    receiver, config = await start(vendor)
    receiver.script.append(web.Response(status=503, headers={"Retry-After": "3"}))

    failure = await Attempt(Webhook()).send(config, FLAG_EVENT)

    assert isinstance(failure, RetryableDeliveryError)
    assert failure.retry_after == 3


def test_authorization_is_a_masked_secret_and_headers_are_plain() -> None:
    webhook = Webhook()
    config = webhook.parse_config(
        {"url": "https://example.com/h", "authorization": BEARER, "headers": {"X-A": "1"}}
    )

    assert webhook.dump_config(config, mask=True) == {
        "url": "https://example.com/********",  # a secret URL: only its host shows
        "headers": {"X-A": "1"},
        "authorization": "********",
    }
    form = {field["key"]: field for field in webhook.form()}
    assert form["headers"]["type"] == "map"
    assert form["authorization"]["secret"] is True


def test_config_without_url_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequest, match=r"config\.url: Field required"):
        Webhook().parse_config({"headers": {"X-A": "1"}})


@pytest.mark.parametrize(
    "name",
    ["Content-Type", "content-length", "Host", "webhook-signature", "Webhook-Id", "Connection"],
)
def test_headers_that_pushgate_sets_cannot_be_replaced(name: str) -> None:
    with pytest.raises(InvalidRequest, match=r"config\.headers: .*cannot be replaced"):
        Webhook().parse_config({"url": "https://example.com/h", "headers": {name: "x"}})


def test_authorization_in_plain_headers_points_to_the_secret_field() -> None:
    with pytest.raises(InvalidRequest, match=r"use the secret authorization field"):
        Webhook().parse_config(
            {"url": "https://example.com/h", "headers": {"Authorization": BEARER}}
        )


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"X Bad": "1"}, "not a valid header name"),
        ({"": "1"}, "not a valid header name"),
        ({"X-A": "line\r\nX-Injected: 1"}, "control characters"),
        ({"X-A": "é"}, "printable ASCII"),
        ({"X-A": "v" * 1025}, "at most 1024"),
        ({"X-A": "1", "x-a": "2"}, "appears twice"),
        ({f"X-{n}": "v" for n in range(21)}, "at most 20 headers"),
    ],
)
def test_invalid_header_names_and_values_are_refused(headers: dict[str, str], problem: str) -> None:
    with pytest.raises(InvalidRequest, match=rf"config\.headers[.:].*{problem}"):
        Webhook().parse_config({"url": "https://example.com/h", "headers": headers})


def test_authorization_value_with_a_newline_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"config\.authorization: .*control characters"):
        Webhook().parse_config({"url": "https://example.com/h", "authorization": "a\nb"})
