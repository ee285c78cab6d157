"""Secrets are masked in every encoding a receiver may echo, at a cut, and when pushgate fetched
them itself; a secret too short to recognise is refused instead of masked."""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import structlog
from aiohttp import web

from conftest import Database, Receiver, Server, flag_event, free_port
from pushgate.logs import configure
from pushgate.masking import SECRET_MASK, Redactor

# Characters that every encoding changes: a quote, a backslash, a slash, a space, non-ASCII.
SECRET = 'Bearer sk"live\\with/slash +é-0123456789'
ASCII_SECRET = "sk-live-0123456789/abc def+ghi"
# A header value (printable ASCII) that JSON escapes: a quote, a backslash, a slash.
HEADER = 'Bearer sk"live\\with/slash-0123456789'


@pytest.mark.parametrize(
    "echoed",
    [
        SECRET,
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),
        quote(SECRET),
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), quote(SECRET, safe="")),
        html.escape(SECRET),
    ],
)
def test_every_encoding_of_a_secret_is_masked(echoed: str) -> None:
    masked = Redactor([SECRET]).mask(f"before {echoed} after")
    assert masked == f"before {SECRET_MASK} after"


@pytest.mark.parametrize("kept", [1, 5, 20, len(ASCII_SECRET) - 1])
def test_a_secret_cut_at_the_end_of_a_body_is_masked_however_little_is_left(kept: int) -> None:
    text = "x" * 50 + ASCII_SECRET[:kept]
    assert Redactor([ASCII_SECRET]).mask(text, cut=True) == "x" * 50 + SECRET_MASK
    assert Redactor([ASCII_SECRET]).mask(text, cut=False) == text  # a whole body: no tail


def test_a_secret_too_short_to_recognise_is_never_masked() -> None:
    assert Redactor(["e"]).mask("every e in the sentence stays") == "every e in the sentence stays"


async def test_a_short_secret_is_refused_when_saved(server: Server) -> None:
    status, answer = await server.call(
        "POST", "/api/v2/integrations/datadog", {"name": "d", "config": {"apiKey": "e"}}
    )
    assert status == 400
    assert answer["message"].startswith("config.apiKey: a secret must be at least 8 characters")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure("debug", json_lines=True, stream=buffer)
    yield buffer
    structlog.reset_defaults()


def every_form(secret: str) -> list[str]:
    return [
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote_plus(secret),
        quote(secret, safe=""),
    ]


async def everything_shown(server: Server, path: str, validation: Any) -> str:
    shown = [validation]
    for url in (path, path + "/errors"):
        shown.append((await server.call("GET", url))[1])
    return json.dumps(shown, ensure_ascii=False)


async def test_a_secret_echoed_as_json_never_shows(
    server: Server, receiver: Receiver, log_lines: io.StringIO, database: Database
) -> None:
    # A receiver that echoes the request's headers back as JSON, as some do in errors.
    receiver.responder = lambda sent: (401, json.dumps({"got": sent.headers}), {})
    status, created = await server.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "h", "on": True, "config": {"url": receiver.url, "authorization": HEADER}},
    )
    assert status == 201
    path = f"/api/v2/integrations/webhook/{created['_id']}"
    _, validation = await server.call("POST", path + "/validate")
    assert validation["statusCode"] == 401
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    await server.deliver()

    shown = await everything_shown(server, path, validation)
    assert SECRET_MASK in shown
    stored = (await database.stored_bytes()).decode("utf-8", "replace")
    assert created["_id"] in stored
    for form in every_form(HEADER):
        assert form not in shown
        assert form not in log_lines.getvalue()
        assert form not in stored


async def test_a_secret_echoed_in_a_successful_validation_never_shows(
    server: Server, receiver: Receiver
) -> None:
    # Validation shows the tool's answer on success too: it is masked like any other.
    receiver.responder = lambda sent: (200, json.dumps({"got": sent.headers}), {})
    status, created = await server.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "h", "config": {"url": receiver.url, "authorization": HEADER}},
    )
    assert status == 201
    path = f"/api/v2/integrations/webhook/{created['_id']}"
    _, validation = await server.call("POST", path + "/validate")
    assert (validation["ok"], validation["statusCode"]) == (True, 200)
    assert SECRET_MASK in validation["responseBody"]
    for form in every_form(HEADER):
        assert form not in json.dumps(validation, ensure_ascii=False)


async def test_a_secret_cut_by_the_response_body_limit_is_masked(
    server: Server, receiver: Receiver
) -> None:
    limit = server.runtime.settings.response_body_limit
    # The secret starts 30 bytes before the cut: only its first 30 characters are read.
    receiver.responder = lambda sent: (
        400,
        "e" * (limit - 30) + sent.headers["Authorization"],
        {},
    )
    status, created = await server.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "h", "config": {"url": receiver.url, "authorization": ASCII_SECRET}},
    )
    assert status == 201
    _, validation = await server.call(
        "POST", f"/api/v2/integrations/webhook/{created['_id']}/validate"
    )
    assert validation["responseBody"] == "e" * (limit - 30) + SECRET_MASK
    assert ASCII_SECRET[:8] not in json.dumps(validation)


APPD_SECRET = "b7d3c2a0/1111+4222 8333&944455556666"
ACCESS_TOKEN = "appd-access-token-0123456789abcdef"


class EchoingController:
    """An AppDynamics controller that echoes what it was sent, in the way it was sent."""

    def __init__(self) -> None:
        self.grant_fails = True

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/controller/api/oauth/access_token", self.token)
        app.router.add_post("/controller/rest/applications/{application}/events", self.event)
        return app

    async def token(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        if self.grant_fails:  # echo the form as it came, form-encoded
            return web.Response(status=401, text=f"invalid client: {body}")
        return web.json_response({"access_token": ACCESS_TOKEN, "expires_in": 300})

    async def event(self, request: web.Request) -> web.Response:
        return web.Response(status=403, text=f"forbidden for {request.headers['Authorization']}")


@pytest.fixture
async def controller() -> Any:
    echo = EchoingController()
    runner = web.AppRunner(echo.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield echo, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_appdynamics_secret_echoed_form_encoded_and_fetched_token_never_show(
    server: Server, controller: Any, log_lines: io.StringIO, database: Database
) -> None:
    echo, base = controller
    config = {
        "account": "acme",
        "applicationID": "42",
        "controllerURL": base,
        "clientName": "pushgate",
        "clientSecret": APPD_SECRET,
    }
    status, created = await server.call(
        "POST", "/api/v2/integrations/appdynamics", {"name": "a", "on": True, "config": config}
    )
    assert status == 201
    path = f"/api/v2/integrations/appdynamics/{created['_id']}"
    _, refused = await server.call("POST", path + "/validate")
    assert "invalid client" in refused["responseBody"]
    echo.grant_fails = False
    _, forbidden = await server.call("POST", path + "/validate")
    assert forbidden["responseBody"] == f"forbidden for {SECRET_MASK}"  # the header, derived
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    await server.deliver()

    shown = await everything_shown(server, path, [refused, forbidden])
    stored = (await database.stored_bytes()).decode("utf-8", "replace")
    for form in [*every_form(APPD_SECRET), ACCESS_TOKEN]:
        assert form not in shown
        assert form not in log_lines.getvalue()
        assert form not in stored
