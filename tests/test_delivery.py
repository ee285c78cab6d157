"""Events in, deliveries out: status counters, error log, retries, policies — over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest

from conftest import Receiver, Server, flag_event
from pushgate.domain import DeliveryState
from pushgate.runtime import running
from pushgate.settings import Settings


async def make_webhook(server: Server, url: str, **body: Any) -> dict[str, Any]:
    payload = {"name": "hook", "on": True, "config": {"url": url}, **body}
    status, created = await server.call("POST", "/api/v2/integrations/webhook", payload)
    assert status == 201, created
    return created


async def status_of(server: Server, created: dict[str, Any]) -> dict[str, Any]:
    status, body = await server.call("GET", f"/api/v2/integrations/webhook/{created['_id']}")
    assert status == 200
    result: dict[str, Any] = body["_status"]
    return result


async def test_event_is_delivered_and_counted(server: Server, receiver: Receiver) -> None:
    created = await make_webhook(server, receiver.url + "/hook")
    status, answer = await server.call("POST", "/api/v2/events", flag_event("e1"))
    assert status == 202
    assert answer == {"ids": ["e1"], "accepted": ["e1"], "deliveries": 1}

    assert await server.deliver() == 1

    assert len(receiver.requests) == 1
    sent = receiver.requests[0]
    assert sent.path == "/hook"
    assert sent.json()["_id"] == "e1"
    assert sent.headers["webhook-id"] == "e1"
    st = await status_of(server, created)
    assert st["successCount"] == 1
    assert st["errorCount"] == 0
    assert st["lastSuccess"] == server.clock()
    assert "lastError" not in st


async def test_500_then_200_logs_one_error_then_succeeds(
    server: Server, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    receiver.answer(500, "upstream exploded")
    await server.call("POST", "/api/v2/events", flag_event("e1"))

    await server.deliver()
    st = await status_of(server, created)
    assert st["errorCount"] == 1
    assert st["successCount"] == 0
    assert st["errors"][0]["statusCode"] == 500
    assert st["errors"][0]["responseBody"] == "upstream exploded"
    assert st["errors"][0]["timestamp"] == server.clock()

    server.clock.advance(4.9)
    assert await server.deliver() == 0  # not due yet: first retry is after 5 s
    server.clock.advance(0.2)
    assert await server.deliver() == 1

    st = await status_of(server, created)
    assert st["successCount"] == 1
    assert st["errorCount"] == 1
    assert len(receiver.requests) == 2
    assert receiver.requests[1].headers["webhook-id"] == "e1"


async def test_400_is_not_retried(server: Server, receiver: Receiver) -> None:
    created = await make_webhook(server, receiver.url)
    receiver.answer(400, '{"error":"bad payload"}')
    await server.call("POST", "/api/v2/events", flag_event("e1"))

    await server.deliver()
    server.clock.advance(10_000)
    assert await server.deliver() == 0

    assert len(receiver.requests) == 1
    counts = await server.runtime.store.deliveries.counts()
    assert counts[DeliveryState.FAILED] == 1
    st = await status_of(server, created)
    assert st["errors"][0]["statusCode"] == 400
    assert st["errors"][0]["willRetry"] is False


async def test_refused_connection_is_logged_as_transport_error(
    server: Server, receiver: Receiver
) -> None:
    from conftest import free_port

    created = await make_webhook(server, f"http://127.0.0.1:{free_port()}/nothing-listens")
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    await server.deliver()

    error = (await status_of(server, created))["errors"][0]
    assert "statusCode" not in error
    assert "ClientConnectorError" in error["error"] or "Connect" in error["error"]
    assert error["willRetry"] is True
    assert "check the URL" in error["hint"]


async def test_retry_after_is_honoured(server: Server, receiver: Receiver) -> None:
    await make_webhook(server, receiver.url)
    receiver.answer(429, "slow down", {"Retry-After": "60"})
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    await server.deliver()

    server.clock.advance(30)  # past the schedule's 5 s, before Retry-After's 60 s
    assert await server.deliver() == 0
    server.clock.advance(31)
    assert await server.deliver() == 1
    assert len(receiver.requests) == 2


async def test_retries_give_up_after_the_schedule(server: Server, receiver: Receiver) -> None:
    created = await make_webhook(server, receiver.url)
    receiver.default = (503, "down", {})
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    for _ in range(10):
        await server.deliver()
        server.clock.advance(200)

    assert len(receiver.requests) == 4  # 1 try + 3 retries (schedule 5,30,120)
    st = await status_of(server, created)
    assert st["errorCount"] == 4
    assert (await server.runtime.store.deliveries.counts())[DeliveryState.FAILED] == 1


async def test_deny_statement_wins_over_allow(server: Server, receiver: Receiver) -> None:
    statements = [
        {"effect": "allow", "resources": ["proj/*:env/*:flag/*"], "actions": ["*"]},
        {"effect": "deny", "resources": ["proj/*:env/production:flag/*"], "actions": ["*"]},
    ]
    await make_webhook(server, receiver.url, statements=statements)
    _, production = await server.call("POST", "/api/v2/events", flag_event("e1"))
    _, staging = await server.call("POST", "/api/v2/events", flag_event("e2", env="staging"))
    assert production["deliveries"] == 0
    assert staging["deliveries"] == 1


async def test_event_matching_no_configuration_creates_no_delivery(
    server: Server, receiver: Receiver
) -> None:
    await make_webhook(server, receiver.url)  # default policy: production flags only
    _, answer = await server.call("POST", "/api/v2/events", flag_event("e1", env="staging"))
    assert answer == {"ids": ["e1"], "accepted": ["e1"], "deliveries": 0}
    counts = await server.runtime.store.deliveries.counts()
    assert sum(counts.values()) == 0


async def test_configuration_that_is_off_receives_nothing(
    server: Server, receiver: Receiver
) -> None:
    await make_webhook(server, receiver.url, on=False)
    _, answer = await server.call("POST", "/api/v2/events", flag_event("e1"))
    assert answer["deliveries"] == 0


async def test_events_are_idempotent_on_id(server: Server, receiver: Receiver) -> None:
    await make_webhook(server, receiver.url)
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    _, again = await server.call(
        "POST", "/api/v2/events", {"items": [flag_event("e1"), flag_event("e2")]}
    )
    assert again["ids"] == ["e1", "e2"]
    assert again["accepted"] == ["e2"]
    await server.deliver()
    assert sorted(r.json()["_id"] for r in receiver.requests) == ["e1", "e2"]


async def test_killed_workers_lease_is_claimed_again_after_expiry(
    server: Server, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    store = server.runtime.store.deliveries
    # A worker claims the delivery and dies before sending: only its lease remains.
    leased = (
        await store.claim_due(owner="dead-worker", now=server.clock(), limit=10, lease_ms=60_000)
    ).deliveries
    assert len(leased) == 1
    assert await server.deliver() == 0  # still leased

    server.clock.advance(61)
    assert await server.deliver() == 1
    assert len(receiver.requests) == 1
    assert (await status_of(server, created))["successCount"] == 1


async def test_webhook_signature_follows_standard_webhooks(
    server: Server, receiver: Receiver
) -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    await make_webhook(server, receiver.url, config={"url": receiver.url, "secret": secret})
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    await server.deliver()

    sent = receiver.requests[0]
    signed = (
        f"{sent.headers['webhook-id']}.{sent.headers['webhook-timestamp']}.".encode() + sent.body
    )
    expected = base64.b64encode(
        hmac.new(b"0123456789abcdef0123456789abcdef", signed, hashlib.sha256).digest()
    ).decode()
    assert sent.headers["webhook-signature"] == f"v1,{expected}"


async def test_error_log_keeps_the_newest_entries_and_exact_totals(
    settings_factory: Any, receiver: Receiver
) -> None:
    import aiohttp

    from conftest import assert_described, runtime_of, start_server
    from pushgate.clock import ManualClock

    settings = settings_factory(error_log_size=3, retry_schedule="")
    clock = ManualClock()
    uv, task, url = await start_server(settings, clock)
    try:
        async with aiohttp.ClientSession() as session:
            server = Server(url, runtime_of(uv), clock, session)
            created = await make_webhook(server, receiver.url)
            receiver.default = (500, "fail", {})
            await server.call(
                "POST", "/api/v2/events", {"items": [flag_event(f"e{i}") for i in range(5)]}
            )
            await server.deliver()

            st = await status_of(server, created)
            assert st["errorCount"] == 5
            path = f"/api/v2/integrations/webhook/{created['_id']}/errors?limit=2"
            status, page = await server.call("GET", path)
            assert status == 200
            assert page["totalCount"] == 5
            assert len(page["items"]) == 2
            status, rest = await server.call("GET", page["_links"]["next"]["href"])
            assert len(rest["items"]) == 1  # only 3 are kept
            ids = [e["id"] for e in page["items"] + rest["items"]]
            assert ids == sorted(ids, reverse=True)
    finally:
        uv.should_exit = True
        await task
    assert_described(uv)


@pytest.mark.parametrize("blocked", ["http://10.1.2.3/hook", "http://169.254.169.254/latest"])
async def test_private_targets_are_refused_when_saved(server: Server, blocked: str) -> None:
    payload = {"name": "hook", "on": True, "config": {"url": blocked}}
    status, answer = await server.call("POST", "/api/v2/integrations/webhook", payload)
    assert status == 400
    assert answer["message"].startswith("config.url: ")
    assert "outbound policy" in answer["message"]


async def test_a_saved_target_the_policy_refuses_now_fails_at_delivery(
    server: Server, receiver: Receiver, settings_factory: Callable[..., Settings]
) -> None:
    created = await make_webhook(server, receiver.url + "/hook")  # 127.0.0.0/8 is allowed here
    await server.call("POST", "/api/v2/events", flag_event("e1"))
    narrower = settings_factory(outbound_allow="")  # a worker whose operator allows nothing
    async with running(narrower, with_worker=False, clock=server.clock) as worker_process:
        await worker_process.new_worker().run_until_idle()
    error = (await status_of(server, created))["errors"][0]
    assert "outbound policy" in error["error"]
    assert "PUSHGATE_OUTBOUND_ALLOW" in error["hint"]
    assert error["willRetry"] is False
    assert receiver.requests == []


async def test_retention_prunes_finished_events_and_keeps_pending_ones_and_counters(
    server: Server, receiver: Receiver
) -> None:
    created = await make_webhook(server, receiver.url)
    await server.call("POST", "/api/v2/events", flag_event("old-done"))
    receiver.answer(503, "later")
    await server.deliver()  # old-done fails once and waits for its retry
    await server.call("POST", "/api/v2/events", flag_event("old-other", env="staging"))
    server.clock.advance(6)
    await server.deliver()  # old-done succeeds
    await server.call("POST", "/api/v2/events", flag_event("old-pending"))
    receiver.default = (503, "down", {})
    await server.deliver()  # old-pending is waiting for a retry
    server.clock.advance(8 * 86_400)
    await server.call("POST", "/api/v2/events", flag_event("recent"))

    assert await server.worker().prune() == 2  # old-done and old-other (no deliveries)

    counts = await server.runtime.store.deliveries.counts()
    assert counts[DeliveryState.SUCCEEDED] == 0
    assert counts[DeliveryState.PENDING] == 2  # old-pending and recent
    st = await status_of(server, created)
    assert (st["successCount"], st["errorCount"]) == (1, 2)  # totals stay
    _, again = await server.call("POST", "/api/v2/events", flag_event("old-done"))
    assert again["accepted"] == ["old-done"]  # a pruned id is no longer remembered
    _, kept = await server.call("POST", "/api/v2/events", flag_event("old-pending"))
    assert kept["accepted"] == []


async def test_retention_zero_keeps_everything(settings_factory: Any, receiver: Receiver) -> None:
    from pushgate.clock import ManualClock
    from pushgate.runtime import running

    settings = settings_factory(retention_days=0)
    async with running(settings, with_worker=False, clock=ManualClock()) as rt:
        assert await rt.new_worker().prune() == 0
