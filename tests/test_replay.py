"""Replay: exactly the failed deliveries of a window of event time go out again, once."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Receiver, Server, flag_event
from pushgate.domain import DeliveryState

HOUR = 3_600_000
T0 = 1_700_000_000_000


async def failed_deliveries(server: Server, receiver: Receiver) -> str:
    """e0 (T0), e1 (T0 + 1 h) and e2 (T0 + 2 h) fail for good; ok (T0 + 1 h) succeeds."""
    status, created = await server.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "hook", "on": True, "config": {"url": receiver.url}},
    )
    assert status == 201
    receiver.responder = lambda r: (200, "ok", {}) if r.json()["_id"] == "ok" else (400, "no", {})
    items = [flag_event(f"e{i}", date=T0 + i * HOUR) for i in range(3)]
    items.append(flag_event("ok", date=T0 + HOUR))
    status, _ = await server.call("POST", "/api/v2/events", {"items": items})
    assert status == 202
    await server.deliver()
    assert (await server.runtime.store.deliveries.counts())[DeliveryState.FAILED] == 3
    return str(created["_id"])


async def replay(server: Server, cid: str, body: Any = None) -> tuple[int, Any]:
    return await server.call("POST", f"/api/v2/integrations/webhook/{cid}/replay", body)


async def test_replay_sends_again_exactly_the_failed_deliveries_of_its_window(
    server: Server, receiver: Receiver
) -> None:
    cid = await failed_deliveries(server, receiver)
    receiver.requests.clear()
    receiver.responder = None  # the receiver works now

    status, answer = await replay(server, cid, {"since": T0 + HOUR, "until": T0 + 2 * HOUR})
    assert (status, answer) == (202, {"matched": 1, "queued": 1})
    await server.deliver()

    assert [r.json()["_id"] for r in receiver.requests] == ["e1"]
    _, found = await server.call("GET", f"/api/v2/integrations/webhook/{cid}")
    assert found["_status"]["successCount"] == 2  # "ok" and the replayed e1
    assert found["_status"]["errorCount"] == 3


async def test_a_dry_run_counts_and_queues_nothing(server: Server, receiver: Receiver) -> None:
    cid = await failed_deliveries(server, receiver)
    status, answer = await replay(server, cid, {"dryRun": True})
    assert (status, answer) == (202, {"matched": 3, "queued": 0})
    assert (await server.runtime.store.deliveries.counts())[DeliveryState.PENDING] == 0


async def test_replaying_twice_does_not_send_twice(server: Server, receiver: Receiver) -> None:
    cid = await failed_deliveries(server, receiver)
    receiver.requests.clear()
    receiver.responder = None
    assert await replay(server, cid) == (202, {"matched": 3, "queued": 3})
    assert await replay(server, cid) == (202, {"matched": 0, "queued": 0})
    await server.deliver()
    assert sorted(r.json()["_id"] for r in receiver.requests) == ["e0", "e1", "e2"]


async def test_a_replayed_delivery_starts_a_fresh_retry_schedule(
    server: Server, receiver: Receiver
) -> None:
    cid = await failed_deliveries(server, receiver)
    receiver.responder = None
    receiver.default = (503, "busy", {})
    await replay(server, cid, {"until": T0 + 1})  # e0 only
    await server.deliver()
    _, found = await server.call("GET", f"/api/v2/integrations/webhook/{cid}")
    newest = found["_status"]["errors"][0]
    assert (newest["eventId"], newest["attempt"], newest["willRetry"]) == ("e0", 1, True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": -1}, "until"),
        ({"since": True}, "since"),
        ({"since": 10, "until": 5}, "until"),
        ({"dryRun": "yes"}, "dryRun"),
        ({"window": 1}, "window"),
        ([1, 2], "body"),
    ],
)
async def test_a_bad_replay_body_is_a_400_naming_the_field(
    server: Server, receiver: Receiver, body: Any, field: str
) -> None:
    cid = await failed_deliveries(server, receiver)
    status, answer = await replay(server, cid, body)
    assert status == 400
    assert answer["code"] == "invalid_request"
    assert answer["message"].startswith(f"{field}:")


async def test_replay_needs_a_writer_and_an_existing_configuration(
    server: Server, receiver: Receiver
) -> None:
    cid = await failed_deliveries(server, receiver)
    status, created = await server.call("POST", "/api/v2/tokens", {"name": "ro", "role": "reader"})
    assert status == 201
    status, _ = await server.call(
        "POST", f"/api/v2/integrations/webhook/{cid}/replay", token=created["token"]
    )
    assert status == 403
    status, answer = await replay(server, "0" * 24)
    assert (status, answer["code"]) == (404, "not_found")
