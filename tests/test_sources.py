"""Event sources: LaunchDarkly's signed webhooks and Standard Webhooks in, as POST /api/v2/events.

Requests are signed here the way the senders sign them: LaunchDarkly's `X-LD-Signature` (hex
HMAC-SHA256 of the body) by hand, Standard Webhooks by the specification's reference library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from conftest import (
    Database,
    Receiver,
    Server,
    assert_described,
    flag_event,
    runtime_of,
    start_server,
)
from pushgate import sources
from pushgate.clock import ManualClock
from pushgate.domain import SourceKind
from pushgate.settings import Settings
from pushgate.store import SourceRow

SOURCES = "/api/v2/sources"
LD_SECRET = "ld-webhook-secret-0123456789"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, the reference library's example


def ld_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post(server: Server, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """POST to an ingest URL as a sender does: no token, the signature in the headers."""
    async with server.session.post(
        url, data=body, headers={"Content-Type": "application/json", **headers}
    ) as answer:
        text = await answer.text()
        return answer.status, (json.loads(text) if text else None)


async def create_source(server: Server, **body: Any) -> dict[str, Any]:
    status, created = await server.call("POST", SOURCES, {"name": "LaunchDarkly", **body})
    assert status == 201, created
    return created


async def hook_to(server: Server, receiver: Receiver) -> None:
    body = {"name": "hook", "on": True, "config": {"url": receiver.url}}
    status, _ = await server.call("POST", "/api/v2/integrations/webhook", body)
    assert status == 201


def standard_headers(secret: str, message_id: str, at_ms: int, body: bytes) -> dict[str, str]:
    moment = datetime.fromtimestamp(at_ms / 1000, UTC)
    signature = Webhook(secret).sign(message_id, moment, body.decode())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(at_ms // 1000),
        "webhook-signature": signature,
    }


async def test_a_body_signed_as_launchdarkly_signs_it_is_accepted_and_delivered(
    server: Server, receiver: Receiver
) -> None:
    await hook_to(server, receiver)
    source = await create_source(server, kind="launchdarkly-webhook", secret=LD_SECRET)
    assert source["ingestUrl"] == f"{server.url}/ingest/{source['_id']}"
    body = json.dumps(flag_event("ld-1")).encode()
    status, answer = await post(
        server, source["ingestUrl"], body, {"X-LD-Signature": ld_signature(LD_SECRET, body)}
    )
    assert (status, answer) == (202, {"ids": ["ld-1"], "accepted": ["ld-1"], "deliveries": 1})
    assert await server.deliver() == 1
    assert receiver.requests[0].json()["_id"] == "ld-1"


async def test_a_replayed_launchdarkly_body_is_the_same_event_and_changes_nothing(
    server: Server, receiver: Receiver
) -> None:
    await hook_to(server, receiver)
    source = await create_source(server, kind="launchdarkly-webhook", secret=LD_SECRET)
    body = json.dumps(flag_event("ld-1")).encode()
    headers = {"X-LD-Signature": ld_signature(LD_SECRET, body)}
    await post(server, source["ingestUrl"], body, headers)
    server.clock.advance(3600)
    status, answer = await post(server, source["ingestUrl"], body, headers)
    assert (status, answer["accepted"], answer["deliveries"]) == (202, [], 0)
    assert await server.deliver() == 1  # sent once
    _, seen = await server.call("GET", f"{SOURCES}/{source['_id']}")
    assert seen["_status"] == {
        "eventsReceived": 1,
        "lastEventAt": server.clock(),
        "lastEventId": "ld-1",
    }


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "X-LD-Signature: required"),
        ({"X-LD-Signature": ld_signature("another-secret-0123456789", b"{}")}, "does not match"),
        ({"X-LD-Signature": "zz"}, "does not match"),
        ({"X-LD-Signature": "ünïcode"}, "does not match"),
    ],
)
async def test_an_unsigned_or_wrongly_signed_body_is_401_and_stores_nothing(
    server: Server, receiver: Receiver, headers: dict[str, str], message: str
) -> None:
    await hook_to(server, receiver)
    source = await create_source(server, kind="launchdarkly-webhook", secret=LD_SECRET)
    body = json.dumps(flag_event("ld-1")).encode()
    status, answer = await post(server, source["ingestUrl"], body, headers)
    assert status == 401
    assert answer["code"] == "unauthorized"
    assert message in answer["message"]
    assert await server.deliver() == 0
    # The event was not stored: signed properly now, it is new.
    good = {"X-LD-Signature": ld_signature(LD_SECRET, body)}
    _, accepted = await post(server, source["ingestUrl"], body, good)
    assert accepted["accepted"] == ["ld-1"]


async def test_a_signature_of_another_body_is_refused(server: Server) -> None:
    source = await create_source(server, kind="launchdarkly-webhook", secret=LD_SECRET)
    signed = json.dumps(flag_event("ld-1")).encode()
    tampered = json.dumps(flag_event("ld-1", env="staging")).encode()
    status, _ = await post(
        server, source["ingestUrl"], tampered, {"X-LD-Signature": ld_signature(LD_SECRET, signed)}
    )
    assert status == 401


async def test_a_signed_body_is_validated_exactly_as_post_events_validates_it(
    server: Server,
) -> None:
    source = await create_source(server, kind="launchdarkly-webhook", secret=LD_SECRET)
    for bad in (b'{"kind": "flag"}', b"{not json", b'{"items": []}', b"[1]"):
        status, answer = await post(
            server, source["ingestUrl"], bad, {"X-LD-Signature": ld_signature(LD_SECRET, bad)}
        )
        expected_status, expected = await server.call("POST", "/api/v2/events", raw=bad)
        assert (status, answer) == (expected_status, expected) == (400, expected)


async def test_the_body_limit_applies_to_sources(settings_factory: Any, receiver: Receiver) -> None:
    small = settings_factory(request_size_limit=2048, event_size_limit=1024)
    uv, task, url = await start_server(small, ManualClock())
    try:
        async with aiohttp.ClientSession() as session:
            server = Server(url, runtime_of(uv), ManualClock(), session)
            source = await create_source(server, kind="launchdarkly-webhook", secret=LD_SECRET)
            body = json.dumps(flag_event("big", comment="x" * 4096)).encode()
            status, answer = await post(
                server, source["ingestUrl"], body, {"X-LD-Signature": ld_signature(LD_SECRET, body)}
            )
    finally:
        uv.should_exit = True
        await task
    assert (status, answer["code"]) == (413, "request_too_large")
    assert_described(uv)


async def test_standard_webhooks_signed_by_the_reference_library_are_accepted(
    server: Server, receiver: Receiver
) -> None:
    await hook_to(server, receiver)
    source = await create_source(server, kind="standard-webhooks", secret=WHSEC)
    entry = flag_event("sw-1")
    del entry["_id"]  # the webhook-id stands in for it
    body = json.dumps(entry).encode()
    headers = standard_headers(WHSEC, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", server.clock(), body)
    status, answer = await post(server, source["ingestUrl"], body, headers)
    assert (status, answer["accepted"]) == (202, ["msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"])
    status, again = await post(server, source["ingestUrl"], body, headers)  # the sender retries
    assert (status, again["accepted"]) == (202, [])
    assert await server.deliver() == 1


async def test_one_matching_signature_among_several_is_enough(server: Server) -> None:
    source = await create_source(server, kind="standard-webhooks", secret=WHSEC)
    body = json.dumps(flag_event("sw-rotated")).encode()
    headers = standard_headers(WHSEC, "msg_1", server.clock(), body)
    old = standard_headers("whsec_" + "A" * 32, "msg_1", server.clock(), body)
    headers["webhook-signature"] = (
        f"v1a,aGVsbG8= {old['webhook-signature']} {headers['webhook-signature']}"
    )
    status, _ = await post(server, source["ingestUrl"], body, headers)
    assert status == 202


@pytest.mark.parametrize("seconds", [-301, 301, -3600])
async def test_a_standard_webhooks_message_outside_the_tolerance_is_refused(
    server: Server, seconds: int
) -> None:
    source = await create_source(server, kind="standard-webhooks", secret=WHSEC)
    body = json.dumps(flag_event("sw-old")).encode()
    headers = standard_headers(WHSEC, "msg_old", server.clock() + seconds * 1000, body)
    status, answer = await post(server, source["ingestUrl"], body, headers)
    assert status == 401
    assert answer["message"].startswith("webhook-timestamp: ")
    assert "300 s allowed" in answer["message"]
    # Within the tolerance, the same (freshly signed) message is new: nothing was stored.
    fresh = standard_headers(WHSEC, "msg_old", server.clock(), body)
    _, accepted = await post(server, source["ingestUrl"], body, fresh)
    assert accepted["accepted"] == ["sw-old"]


async def test_a_captured_standard_webhooks_message_cannot_be_replayed_later(
    server: Server,
) -> None:
    source = await create_source(server, kind="standard-webhooks", secret=WHSEC)
    body = json.dumps(flag_event("sw-1")).encode()
    headers = standard_headers(WHSEC, "msg_1", server.clock(), body)
    assert (await post(server, source["ingestUrl"], body, headers))[0] == 202
    server.clock.advance(6 * 60)
    status, answer = await post(server, source["ingestUrl"], body, headers)
    assert status == 401
    assert "behind" in answer["message"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-signature": None}, "webhook-signature: required"),
        ({"webhook-id": None, "webhook-timestamp": None}, "webhook-id, webhook-timestamp: req"),
        ({"webhook-timestamp": "soon"}, "webhook-timestamp: must be a time"),
        ({"webhook-signature": "v1,AAAA"}, "no v1 signature matches"),
        ({"webhook-id": "msg_other"}, "no v1 signature matches"),
    ],
)
async def test_standard_webhooks_headers_that_do_not_hold_are_401(
    server: Server, change: dict[str, str | None], message: str
) -> None:
    source = await create_source(server, kind="standard-webhooks", secret=WHSEC)
    body = json.dumps(flag_event("sw-1")).encode()
    headers: dict[str, str] = standard_headers(WHSEC, "msg_1", server.clock(), body)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    status, answer = await post(server, source["ingestUrl"], body, headers)
    assert (status, answer["code"]) == (401, "unauthorized")
    assert message in answer["message"]


async def test_the_secret_is_shown_once_sealed_at_rest_and_masked_afterwards(
    server: Server, database: Database
) -> None:
    created = await create_source(server, kind="standard-webhooks")
    secret = created["secret"]
    assert secret.startswith("whsec_")
    sources.signing_key(SourceKind.STANDARD_WEBHOOKS, secret)  # a usable key
    _, one = await server.call("GET", f"{SOURCES}/{created['_id']}")
    _, listing = await server.call("GET", SOURCES)
    assert one["secret"] == listing["items"][0]["secret"] == "********"
    assert secret not in json.dumps([one, listing])
    stored = await database.stored_bytes()
    assert created["_id"].encode() in stored
    assert secret.encode() not in stored
    assert secret.removeprefix("whsec_").encode() not in stored


async def test_a_generated_launchdarkly_secret_verifies(server: Server) -> None:
    created = await create_source(server, kind="launchdarkly-webhook")
    body = json.dumps(flag_event("ld-gen")).encode()
    headers = {"X-LD-Signature": ld_signature(created["secret"], body)}
    status, _ = await post(server, created["ingestUrl"], body, headers)
    assert status == 202


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "launchdarkly-webhook"}, "name: required"),
        ({"name": "x"}, "kind: required"),
        ({"name": "x", "kind": "github"}, "kind: must be one of launchdarkly-webhook"),
        ({"name": "x", "kind": "launchdarkly-webhook", "secret": "short"}, "at least 16"),
        ({"name": "x", "kind": "standard-webhooks", "secret": "whsec_not base64!"}, "base64"),
        ({"name": "x", "kind": "standard-webhooks", "secret": "whsec_AAAA"}, "24 to 64 bytes"),
        ({"name": "x", "kind": "standard-webhooks", "secret": 5}, "secret: must be a string"),
        ({"name": "x", "kind": "standard-webhooks", "policy": []}, "policy: unknown field"),
        ({"name": "", "kind": "standard-webhooks"}, "name: must not be empty"),
    ],
)
async def test_a_source_that_cannot_be_is_400_naming_the_field(
    server: Server, body: dict[str, Any], message: str
) -> None:
    status, answer = await server.call("POST", SOURCES, body)
    assert (status, answer["code"]) == (400, "invalid_request")
    assert message in answer["message"]
    _, listing = await server.call("GET", SOURCES)
    assert listing["items"] == []


@pytest.mark.parametrize("role", ["reader", "writer"])
async def test_sources_are_for_admin_tokens(server: Server, role: str) -> None:
    _, made = await server.call("POST", "/api/v2/tokens", {"name": role, "role": role})
    for method, path, body in (("GET", SOURCES, None), ("POST", SOURCES, {"name": "x"})):
        status, answer = await server.call(method, path, body, token=made["token"])
        assert (status, answer["code"]) == (403, "forbidden")


async def test_a_deleted_source_takes_nothing_and_an_unknown_one_is_404(server: Server) -> None:
    source = await create_source(server, kind="launchdarkly-webhook", secret=LD_SECRET)
    status, _ = await server.call("DELETE", f"{SOURCES}/{source['_id']}")
    assert status == 204
    body = json.dumps(flag_event("late")).encode()
    headers = {"X-LD-Signature": ld_signature(LD_SECRET, body)}
    status, answer = await post(server, source["ingestUrl"], body, headers)
    assert (status, answer["code"]) == (404, "not_found")
    status, _ = await server.call("DELETE", f"{SOURCES}/{source['_id']}")
    assert status == 404
    status, _ = await post(server, f"{server.url}/ingest/not-an-id", body, headers)
    assert status == 404


def test_the_public_url_starts_the_ingest_url() -> None:
    settings = Settings(data_dir="unused", public_url="https://pushgate.example.com/")
    assert settings.public_url == "https://pushgate.example.com"
    row = SourceRow("0123456789abcdef01234567", "x", SourceKind.LAUNCHDARKLY_WEBHOOK, "sealed", 0)
    shown = sources.source_json(row, base_url=settings.public_url)
    assert shown["ingestUrl"] == "https://pushgate.example.com/ingest/0123456789abcdef01234567"
    assert shown["secret"] == "********"


@pytest.mark.parametrize("url", ["pushgate.example.com", "ftp://host", "https://host/?a=1"])
def test_a_public_url_that_is_not_one_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="public_url"):
        Settings(data_dir="unused", public_url=url)
