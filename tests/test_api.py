"""The configurations API: LaunchDarkly's shapes, status codes, errors, roles and secrets."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Server
from pushgate.configurations import open_config

HOOK = "/api/v2/integrations/webhook"
DATADOG = "/api/v2/integrations/datadog"


async def create(server: Server, path: str = HOOK, **body: Any) -> dict[str, Any]:
    payload = {"name": "hook", "config": {"url": "https://example.com/h"}, **body}
    status, created = await server.call("POST", path, payload)
    assert status == 201, created
    return created


async def token(server: Server, role: str) -> str:
    status, body = await server.call("POST", "/api/v2/tokens", {"name": role, "role": role})
    assert status == 201
    value: str = body["token"]
    return value


async def test_create_returns_launchdarkly_shape(server: Server) -> None:
    created = await create(server, tags=["ops"], on=True)
    assert created["_links"]["self"] == {
        "href": f"{HOOK}/{created['_id']}",
        "type": "application/json",
    }
    assert len(created["_id"]) == 24
    assert created["kind"] == "webhook"
    assert created["name"] == "hook"
    assert created["on"] is True
    assert created["tags"] == ["ops"]
    assert created["config"] == {"url": "https://example.com/********"}  # a secret URL
    assert created["statements"] == [
        {"effect": "allow", "resources": ["proj/*:env/production:flag/*"], "actions": ["*"]}
    ]
    assert created["_status"] == {"successCount": 0, "errorCount": 0, "errors": []}


async def test_list_get_patch_delete(server: Server) -> None:
    created = await create(server)
    status, listing = await server.call("GET", HOOK)
    assert status == 200
    assert listing["key"] == "webhook"
    assert [item["_id"] for item in listing["items"]] == [created["_id"]]

    path = f"{HOOK}/{created['_id']}"
    status, patched = await server.call(
        "PATCH",
        path,
        [
            {"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "replace", "path": "/on", "value": True},
            {"op": "add", "path": "/tags/-", "value": "new"},
            {"op": "replace", "path": "/config/url", "value": "https://example.com/other"},
        ],
    )
    assert status == 200, patched
    assert (patched["name"], patched["on"], patched["tags"]) == ("renamed", True, ["new"])
    assert patched["config"]["url"] == "https://example.com/********"
    row = await server.runtime.store.configurations.get("webhook", created["_id"])
    assert open_config(server.runtime.services, row).url.get_secret_value() == (  # type: ignore[attr-defined]
        "https://example.com/other"
    )

    status, body = await server.call("DELETE", path)
    assert (status, body) == (204, None)
    status, body = await server.call("GET", path)
    assert status == 404
    assert body["code"] == "not_found"


async def test_defaults_are_stored_and_returned(server: Server) -> None:
    created = await create(server, DATADOG, config={"apiKey": "dd-secret-value-1234"})
    assert created["config"] == {
        "apiKey": "********",
        "hostURL": "https://api.datadoghq.com",
        "hideMemberDetails": False,
    }


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"name": "x", "config": {}}, "config.url"),
        ({"name": "x", "config": {"url": "https://e.com", "colour": "red"}}, "config.colour"),
        ({"name": "x", "config": {"url": "ftp://e.com"}}, "config.url"),
        ({"config": {"url": "https://e.com"}}, "name"),
        ({"name": "x"}, "config"),
        ({"name": "", "config": {"url": "https://e.com"}}, "name"),
        ({"name": "x", "on": "yes", "config": {"url": "https://e.com"}}, "on"),
        ({"name": "x", "tags": "a", "config": {"url": "https://e.com"}}, "tags"),
        ({"name": "x", "extra": 1, "config": {"url": "https://e.com"}}, "extra"),
        (
            {"name": "x", "config": {"url": "https://e.com"}, "statements": [{"effect": "maybe"}]},
            "statements[0]",
        ),
        ([1, 2], "body"),
    ],
)
async def test_invalid_create_is_a_400_naming_the_field(
    server: Server, body: Any, names: str
) -> None:
    status, answer = await server.call("POST", HOOK, body)
    assert status == 400
    assert answer["code"] == "invalid_request"
    assert names in answer["message"]


async def test_datadog_host_must_be_a_known_site(server: Server) -> None:
    status, answer = await server.call(
        "POST", DATADOG, {"name": "d", "config": {"apiKey": "k", "hostURL": "https://evil.example"}}
    )
    assert status == 400
    assert "config.hostURL" in answer["message"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "JSON body is required"),
    ],
)
async def test_malformed_json_is_a_400(server: Server, raw: bytes, fragment: str) -> None:
    status, answer = await server.call("POST", HOOK, raw=raw)
    assert status == 400
    assert fragment in answer["message"]


@pytest.mark.parametrize(
    ("ops", "status", "code"),
    [
        ([{"op": "replace", "path": "/_id", "value": "x"}], 400, "invalid_request"),
        ([{"op": "replace", "path": "/name", "value": 5}], 400, "invalid_request"),
        ([{"op": "remove", "path": "/config/url"}], 400, "invalid_request"),
        ([{"op": "jump", "path": "/name"}], 400, "invalid_request"),
        ({"op": "replace"}, 400, "invalid_request"),
        ([{"op": "test", "path": "/name", "value": "other"}], 409, "optimistic_locking_error"),
    ],
)
async def test_bad_patches_are_refused(server: Server, ops: Any, status: int, code: str) -> None:
    created = await create(server)
    got, answer = await server.call("PATCH", f"{HOOK}/{created['_id']}", ops)
    assert (got, answer["code"]) == (status, code), answer
    _, unchanged = await server.call("GET", f"{HOOK}/{created['_id']}")
    assert unchanged["name"] == "hook"


async def test_unknown_integration_and_id_are_404(server: Server) -> None:
    for method, path in [
        ("GET", "/api/v2/integrations/nope"),
        ("POST", "/api/v2/integrations/nope"),
        ("GET", f"{HOOK}/000000000000000000000000"),
        ("DELETE", f"{HOOK}/000000000000000000000000"),
        ("GET", "/api/v2/nothing-here"),
    ]:
        status, answer = await server.call(method, path, {"name": "x", "config": {}})
        assert status == 404, (method, path)
        assert answer["code"] == "not_found"


async def test_other_integrations_configuration_is_not_found(server: Server) -> None:
    created = await create(server)
    status, _ = await server.call("GET", f"{DATADOG}/{created['_id']}")
    assert status == 404


async def test_missing_or_wrong_token_is_401(server: Server) -> None:
    for value in ("", "nonsense"):
        status, answer = await server.call("GET", HOOK, token=value)
        assert status == 401
        assert answer["code"] == "unauthorized"


async def test_bearer_prefix_is_accepted(server: Server) -> None:
    status, _ = await server.call("GET", HOOK, token=f"Bearer {server.token}")
    assert status == 200


async def test_reader_reads_but_cannot_write(server: Server) -> None:
    reader = await token(server, "reader")
    status, _ = await server.call("GET", HOOK, token=reader)
    assert status == 200
    for method, path, body in [
        ("POST", HOOK, {"name": "x", "config": {"url": "https://e.com"}}),
        ("POST", "/api/v2/events", {"accesses": []}),
        ("POST", "/api/v2/tokens", {"name": "x"}),
    ]:
        status, answer = await server.call(method, path, body, token=reader)
        assert status == 403
        assert answer["code"] == "forbidden"


async def test_writer_cannot_manage_tokens(server: Server) -> None:
    writer = await token(server, "writer")
    status, _ = await server.call(
        "POST", HOOK, {"name": "x", "config": {"url": "https://e.com"}}, token=writer
    )
    assert status == 201
    status, _ = await server.call("GET", "/api/v2/tokens", token=writer)
    assert status == 403


async def test_revoked_token_stops_working(server: Server) -> None:
    writer = await token(server, "writer")
    _, listing = await server.call("GET", "/api/v2/tokens")
    token_id = next(t["_id"] for t in listing["items"] if t["name"] == "writer")
    assert "token" not in listing["items"][0]
    status, _ = await server.call("DELETE", f"/api/v2/tokens/{token_id}")
    assert status == 204
    status, _ = await server.call("GET", HOOK, token=writer)
    assert status == 401


async def test_secret_is_masked_and_kept_when_the_mask_is_sent_back(server: Server) -> None:
    created = await create(server, DATADOG, name="dd", config={"apiKey": "dd-secret-value-1234"})
    path = f"{DATADOG}/{created['_id']}"
    status, patched = await server.call(
        "PATCH",
        path,
        [
            {
                "op": "replace",
                "path": "/config",
                "value": created["config"] | {"hideMemberDetails": True},
            }
        ],
    )
    assert status == 200, patched
    assert patched["config"]["apiKey"] == "********"
    row = await server.runtime.store.configurations.get("datadog", created["_id"])
    assert "dd-secret-value-1234" not in str(row.config)
    assert "dd-secret-value-1234" not in (row.secrets or "")  # sealed at rest
    config = open_config(server.runtime.services, row)
    assert config.api_key.get_secret_value() == "dd-secret-value-1234"  # type: ignore[attr-defined]


async def test_manifests_list_the_catalog_with_form_fields(server: Server) -> None:
    status, body = await server.call("GET", "/api/v2/integration-manifests")
    assert status == 200
    by_key = {item["key"]: item for item in body["items"]}
    assert {"webhook", "datadog"} <= set(by_key)
    fields = {f["key"]: f for f in by_key["datadog"]["formVariables"]}
    assert fields["apiKey"]["secret"] is True
    assert fields["apiKey"]["required"] is True
    assert fields["hostURL"]["type"] == "enum"
    assert "https://api.datadoghq.eu" in fields["hostURL"]["choices"]
    assert fields["hostURL"]["default"] == "https://api.datadoghq.com"
    assert fields["hideMemberDetails"]["type"] == "boolean"


@pytest.mark.parametrize(
    "body",
    [
        {"accesses": "nope"},
        {"items": []},
        {"items": [{"accesses": []}, {"date": "yesterday", "accesses": []}]},
        "text",
    ],
)
async def test_invalid_events_are_rejected_whole(server: Server, body: Any) -> None:
    status, answer = await server.call("POST", "/api/v2/events", body)
    assert status == 400
    assert answer["code"] == "invalid_request"
    counts = await server.runtime.store.deliveries.counts()
    assert sum(counts.values()) == 0


async def test_every_response_is_json(server: Server) -> None:
    async with server.session.get(
        server.url + HOOK, headers={"Authorization": server.token}
    ) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
    async with server.session.get(server.url + HOOK) as resp:
        assert resp.status == 401
        assert resp.headers["Content-Type"].startswith("application/json")


async def test_health_and_metrics(server: Server) -> None:
    async with server.session.get(server.url + "/readyz") as resp:
        assert resp.status == 200
    async with server.session.get(server.url + "/metrics") as resp:
        assert "pushgate_delivery_attempts" in await resp.text()
