"""A manifest integration in a running pushgate: API, worker, validation, UI and CLI, on both
database backends, delivering over real HTTP to a local receiver."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import ADMIN_TOKEN, SECRET_KEY, Database, Receiver, Server, flag_event
from pushgate.domain import DeliveryState
from pushgate.settings import Settings
from webpage import WebClient

MANIFESTS = Path(__file__).resolve().parent / "manifests"
BOARD = "/api/v2/integrations/changeboard"
TOKEN = "cb-token-0123456789"


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(manifest_dirs=str(MANIFESTS))


async def create(server: Server, receiver: Receiver, **body: Any) -> dict[str, Any]:
    payload = {
        "name": "Ops board",
        "on": True,
        "config": {"baseUrl": receiver.url, "apiToken": TOKEN, "board": "ops"},
        **body,
    }
    status, created = await server.call("POST", BOARD, payload)
    assert status == 201, created
    return created


async def test_the_manifest_is_listed_with_its_form_and_default_policy(server: Server) -> None:
    status, body = await server.call("GET", "/api/v2/integration-manifests")

    assert status == 200
    [entry] = [item for item in body["items"] if item["key"] == "changeboard"]
    assert entry["name"] == "Changeboard"
    assert [field["key"] for field in entry["formVariables"]] == [
        "baseUrl",
        "apiToken",
        "board",
        "severity",
        "quiet",
        "utcOffset",
        "signingSecret",
    ]
    assert entry["defaultPolicy"][0]["resources"] == ["proj/*:env/*:flag/*", "proj/*", "member/*"]
    [webhook] = [item for item in body["items"] if item["key"] == "webhook"]
    assert webhook["defaultPolicy"][0]["resources"] == ["proj/*:env/production:flag/*"]


async def test_a_configuration_gets_the_manifests_default_policy_and_sealed_secrets(
    server: Server, receiver: Receiver, database: Database
) -> None:
    created = await create(server, receiver)

    assert created["kind"] == "changeboard"
    assert created["statements"] == [
        {
            "effect": "allow",
            "resources": ["proj/*:env/*:flag/*", "proj/*", "member/*"],
            "actions": ["*"],
        }
    ]
    assert created["config"] == {
        "baseUrl": receiver.url,
        "apiToken": "********",
        "board": "ops",
        "severity": "info",
        "quiet": False,
        "utcOffset": "0",
    }
    assert TOKEN.encode() not in await database.stored_bytes()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"baseUrl": "not a url", "apiToken": TOKEN, "board": "ops"}, "config.baseUrl: "),
        ({"baseUrl": "https://cb.example.com", "board": "ops"}, "config.apiToken: Field required"),
        (
            {"baseUrl": "https://cb.example.com", "apiToken": TOKEN, "board": "ops", "x": 1},
            "config.x: unknown field",
        ),
    ],
)
async def test_bad_config_is_a_400_naming_the_field(
    server: Server, config: dict[str, Any], message: str
) -> None:
    status, body = await server.call("POST", BOARD, {"name": "b", "config": config})

    assert status == 400
    assert body["code"] == "invalid_request"
    assert message in body["message"]


async def test_events_are_delivered_by_the_worker_and_empty_renders_are_skipped(
    server: Server, receiver: Receiver
) -> None:
    created = await create(server, receiver)
    renamed = {
        "_id": "p1",
        "kind": "project",
        "name": "Web shop",
        "accesses": [{"action": "updateName", "resource": "proj/web"}],
    }
    project_created = {
        **renamed,
        "_id": "p2",
        "accesses": [{"action": "createProject", "resource": "proj/web"}],
    }
    status, answer = await server.call(
        "POST", "/api/v2/events", {"items": [flag_event("f1"), renamed, project_created]}
    )
    assert status == 202
    assert answer["deliveries"] == 3

    assert await server.deliver() == 3

    assert [r.json().get("flag") or r.json()["project"] for r in receiver.requests] == [
        "new-checkout",
        "web",
    ]
    counts = await server.runtime.store.deliveries.counts()
    assert counts[DeliveryState.SUCCEEDED] == 2
    assert counts[DeliveryState.SKIPPED] == 1  # finished, neither a success nor an error
    status, shown = await server.call("GET", f"{BOARD}/{created['_id']}")
    assert (shown["_status"]["successCount"], shown["_status"]["errorCount"]) == (2, 0)


async def test_a_refused_delivery_is_in_the_error_log_with_the_response_body(
    server: Server, receiver: Receiver
) -> None:
    created = await create(server, receiver)
    receiver.answer(404, '{"error": "no board ops"}')
    await server.call("POST", "/api/v2/events", flag_event("f1"))

    await server.deliver()

    _, shown = await server.call("GET", f"{BOARD}/{created['_id']}")
    [error] = shown["_status"]["errors"]
    assert error["statusCode"] == 404
    assert error["responseBody"] == '{"error": "no board ops"}'
    assert error["willRetry"] is False


async def test_validate_connection_sends_the_validation_template(
    server: Server, receiver: Receiver
) -> None:
    created = await create(server, receiver)

    status, report = await server.call("POST", f"{BOARD}/{created['_id']}/validate")

    assert status == 200
    assert report["ok"] is True
    [sent] = receiver.requests
    assert sent.json() == {"title": "pushgate can post to this board", "board": "ops", "test": True}
    assert (
        sent.headers["Authorization"]
        == "Basic " + base64.b64encode(f"pushgate:{TOKEN}".encode()).decode()
    )


@pytest.fixture
async def admin(server: Server) -> AsyncIterator[WebClient]:
    client = WebClient(server.url)
    assert (await client.sign_in(ADMIN_TOKEN)).status == 303
    yield client
    await client.close()


async def test_the_ui_lists_the_manifest_with_its_icon_and_a_generated_form(
    admin: WebClient,
) -> None:
    catalog = (await admin.get("/settings/integrations")).page
    [logo] = catalog.find("img", class_="logo logo-image")
    assert logo.attrs["src"].startswith("data:image/svg+xml;base64,")

    form = (await admin.get("/settings/integrations/changeboard/new")).page

    assert form.one("input", name="config.baseUrl").attrs["type"] == "url"
    assert form.one("input", name="config.apiToken").attrs["type"] == "password"
    assert form.one("input", name="config.quiet").attrs["type"] == "checkbox"
    assert form.value_of("config.severity") == "info"
    assert form.value_of("config.utcOffset") == "0"
    help_link = form.one("a", href="https://changeboard.example.com/docs/url")
    assert help_link.text == "How to find it"
    assert form.value_of("statements[0].resources") == "proj/*:env/*:flag/*\nproj/*\nmember/*"


async def test_the_ui_saves_a_configuration_from_the_generated_form(
    admin: WebClient, server: Server, receiver: Receiver
) -> None:
    page = (await admin.get("/settings/integrations/changeboard/new")).page
    answer = await admin.post(
        "/settings/integrations/changeboard/new",
        {
            "csrf": page.csrf,
            "name": "From the form",
            "on": "true",
            "config.baseUrl": receiver.url,
            "config.apiToken": TOKEN,
            "config.board": "ops",
            "config.severity": "warning",
            "config.quiet": "true",
            "statements[0].effect": "allow",
            "statements[0].resourcesKind": "resources",
            "statements[0].resources": "proj/*:env/*:flag/*",
            "statements[0].actionsKind": "actions",
            "statements[0].actions": "*",
        },
    )

    assert answer.status == 303
    _, listed = await server.call("GET", BOARD)
    [saved] = listed["items"]
    assert saved["config"]["severity"] == "warning"
    assert saved["config"]["quiet"] is True
    assert saved["config"]["apiToken"] == "********"


async def test_the_cli_validates_a_manifest_configuration(
    server: Server, receiver: Receiver, database: Database
) -> None:
    created = await create(server, receiver)
    env = {
        **os.environ,
        **database.env(),
        "PUSHGATE_SECRET_KEY": SECRET_KEY,
        "PUSHGATE_MANIFEST_DIRS": str(MANIFESTS),
        "PUSHGATE_OUTBOUND_ALLOW": "127.0.0.0/8",
        "PUSHGATE_LOG_LEVEL": "warning",
    }

    # Not subprocess.run: the receiver answers from this test's event loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushgate",
        "validate",
        "changeboard",
        created["_id"],
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, errors = await process.communicate()

    assert process.returncode == 0, errors.decode()
    assert json.loads(out)["ok"] is True
    assert receiver.requests[0].json()["test"] is True
