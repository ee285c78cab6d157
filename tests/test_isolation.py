"""Isolation: a hanging, backlogged or failing receiver costs its own configuration only.

Real receivers on loopback. The running-worker tests use real time (a receiver that hangs can
only be shown hanging); everything about the breaker's schedule moves a manual clock and runs
the worker until idle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from conftest import Receiver, Server, flag_event
from pushgate.delivery.worker import Worker
from pushgate.domain import DeliveryState
from pushgate.runtime import running
from pushgate.settings import Settings
from pushgate.store import NewEvent

Receivers = Callable[[], Awaitable[Receiver]]


Start = Callable[[Settings], Awaitable[Worker]]


@pytest.fixture
async def start(server: Server) -> AsyncIterator[Start]:
    """Runs a worker with settings of its own (its own transport too), woken by the server's
    ingest as the in-process worker of `serve` is; stopped gracefully at the end."""
    async with contextlib.AsyncExitStack() as stack:
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []

        async def start_(settings: Settings) -> Worker:
            runtime = await stack.enter_async_context(
                running(settings, with_worker=False, clock=server.clock)
            )
            worker = runtime.new_worker()
            server.runtime.worker = worker
            tasks.append(asyncio.create_task(worker.run(stop)))
            return worker

        try:
            yield start_
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            server.runtime.worker = None


async def webhook(server: Server, url: str, name: str = "hook", **extra: Any) -> str:
    body = {"name": name, "on": True, "config": {"url": url}, **extra}
    status, created = await server.call("POST", "/api/v2/integrations/webhook", body)
    assert status == 201, created
    return str(created["_id"])


async def post(server: Server, *ids: str) -> None:
    status, answer = await server.call(
        "POST", "/api/v2/events", {"items": [flag_event(i) for i in ids]}
    )
    assert status == 202, answer


async def configuration(server: Server, configuration_id: str) -> dict[str, Any]:
    status, found = await server.call("GET", f"/api/v2/integrations/webhook/{configuration_id}")
    assert status == 200
    return dict(found)


async def test_receivers_that_hang_do_not_delay_a_healthy_configuration(
    server: Server,
    receivers: Receivers,
    settings_factory: Callable[..., Settings],
    start: Start,
) -> None:
    healthy, hanging = await receivers(), await receivers()
    hanging.gate = asyncio.Event()  # accepts every request and never answers
    # Two hanging configurations take 2 x 2 slots: every slot of this worker, until their
    # attempts turn slow (after a second) and give the slots back.
    await webhook(server, hanging.url, "hangs 1")
    await webhook(server, hanging.url, "hangs 2")
    await webhook(server, healthy.url, "healthy")
    settings = settings_factory(
        request_timeout=60, worker_concurrency=4, configuration_concurrency=2
    )
    await start(settings)

    for i in range(20):
        await post(server, f"e{i}")
        await healthy.wait_for(i + 1, within=10)

    # Each hanging configuration holds exactly its own limit, nothing more.
    assert len(hanging.requests) == 4
    assert [r.json()["_id"] for r in healthy.requests] == [f"e{i}" for i in range(20)]


async def test_a_backlog_does_not_stand_in_front_of_another_configurations_new_event(
    server: Server,
    receivers: Receivers,
    settings_factory: Callable[..., Settings],
    start: Start,
) -> None:
    busy, quiet = await receivers(), await receivers()
    busy.delay = 0.02  # 4 in flight, 50/s each: the backlog of 2,000 takes about 10 s
    busy_id = await webhook(server, busy.url, "busy")
    quiet_id = await webhook(server, quiet.url, "quiet")
    store = server.runtime.store.deliveries
    backlog = [NewEvent(f"b{i}", 0, "flag", flag_event(f"b{i}"), [busy_id]) for i in range(2000)]
    await store.enqueue(backlog, now=server.clock())
    worker = await start(settings_factory(configuration_concurrency=4))
    worker.wake()
    await busy.wait_for(10)

    await store.enqueue(
        [NewEvent("new", 0, "flag", flag_event("new"), [quiet_id])], now=server.clock()
    )
    worker.wake()
    await quiet.wait_for(1, within=10)

    assert len(busy.requests) < 1000  # the backlog is far from drained


async def test_claims_give_every_configuration_its_turn(server: Server, receiver: Receiver) -> None:
    big = await webhook(server, receiver.url, "big")
    small = await webhook(server, receiver.url, "small")
    store = server.runtime.store.deliveries
    now = server.clock()
    await store.enqueue(
        [NewEvent(f"b{i}", 0, "flag", {"_id": f"b{i}"}, [big]) for i in range(500)], now=now - 10
    )
    await store.enqueue([NewEvent("s", 0, "flag", {"_id": "s"}, [small])], now=now)

    claim = await store.claim_due(owner="w", now=now, limit=100, lease_ms=10_000)

    by_configuration = [d.configuration_id for d in claim.deliveries]
    assert len(by_configuration) == 100
    assert by_configuration.count(small) == 1
    assert claim.more


async def test_a_run_of_failures_pauses_the_configuration_and_a_probe_resumes_it(
    server: Server, receiver: Receiver, settings_factory: Callable[..., Settings]
) -> None:
    receiver.default = (500, "down", {})
    cid = await webhook(server, receiver.url)
    await post(server, *(f"e{i}" for i in range(10)))
    settings = settings_factory(
        breaker_threshold=3, configuration_concurrency=1, claim_batch_size=1
    )
    worker = server.runtime.new_worker(settings)
    store = server.runtime.store.deliveries
    paused_at = server.clock()

    await worker.run_until_idle()

    assert len(receiver.requests) == 3  # the threshold; the other 7 wait, unattempted
    health = (await configuration(server, cid))["_health"]
    assert health["state"] == "paused"
    assert "3 attempts in a row failed" in health["reason"]
    assert health["resumesAt"] == paused_at + 5000
    assert health["pending"] == 10
    waiting = (await store.claim_due(owner="x", now=paused_at, limit=100, lease_ms=1)).deliveries
    assert waiting == []  # paused: nothing is handed out

    # The probe is due after 5 s: one attempt; it fails, so the next waits 10 s.
    server.clock.advance(5)
    await worker.run_until_idle()
    assert len(receiver.requests) == 4
    health = (await configuration(server, cid))["_health"]
    assert (health["state"], health["resumesAt"]) == ("paused", paused_at + 15_000)
    assert health["reason"].startswith("the probe failed")

    # The receiver is back: the next probe succeeds and everything goes out.
    receiver.default = (200, "ok", {})
    server.clock.advance(10)
    await worker.run_until_idle()
    found = await configuration(server, cid)
    assert found["_health"]["state"] == "healthy"
    assert found["_health"]["pending"] == 0
    assert found["_status"]["successCount"] == 10
    assert found["_status"]["errorCount"] == 4
    # Waiting while paused charged nothing: the events that were never attempted went once.
    ids = [r.json()["_id"] for r in receiver.requests]
    assert len(ids) == 14
    assert sorted(set(ids)) == sorted(f"e{i}" for i in range(10))


async def test_a_failed_probe_does_not_use_up_its_deliverys_retries(
    server: Server, receiver: Receiver, settings_factory: Callable[..., Settings]
) -> None:
    receiver.default = (503, "down", {})
    await webhook(server, receiver.url)
    await post(server, "e1")
    worker = server.runtime.new_worker(
        settings_factory(breaker_threshold=1, retry_schedule="5", breaker_backoff_cap=5)
    )
    await worker.run_until_idle()  # attempt 1 fails: paused
    for _ in range(5):  # five probes, far more than the retry schedule allows
        server.clock.advance(5)
        await worker.run_until_idle()
    assert len(receiver.requests) == 6
    counts = await server.runtime.store.deliveries.counts()
    assert counts[DeliveryState.PENDING] == 1  # still kept, not given up
    assert counts[DeliveryState.FAILED] == 0


async def test_retry_after_on_429_pauses_the_whole_configuration(
    server: Server, receiver: Receiver
) -> None:
    receiver.answer(429, "slow down", {"Retry-After": "30"})
    cid = await webhook(server, receiver.url)
    await post(server, "e1")
    worker = server.worker()
    told_at = server.clock()
    await worker.run_until_idle()
    assert len(receiver.requests) == 1

    await post(server, "e2", "e3", "e4")
    await worker.run_until_idle()
    assert len(receiver.requests) == 1  # nothing goes out while the receiver asked to wait
    health = (await configuration(server, cid))["_health"]
    assert (health["state"], health["resumesAt"]) == ("paused", told_at + 30_000)
    assert "Retry-After 30 s" in health["reason"]

    server.clock.advance(30)
    await worker.run_until_idle()
    assert sorted(r.json()["_id"] for r in receiver.requests[1:]) == ["e1", "e2", "e3", "e4"]
    assert (await configuration(server, cid))["_health"]["state"] == "healthy"


async def test_410_turns_the_configuration_off_and_keeps_its_deliveries(
    server: Server, receiver: Receiver
) -> None:
    receiver.answer(410, "this webhook was deleted")
    cid = await webhook(server, receiver.url)
    await post(server, "e1")
    worker = server.worker()
    await worker.run_until_idle()

    found = await configuration(server, cid)
    assert found["on"] is False
    assert found["_health"]["state"] == "off"
    assert "410 Gone" in found["_health"]["reason"]
    assert found["_health"]["pending"] == 1
    assert found["_status"]["errors"][0]["statusCode"] == 410
    await worker.run_until_idle()
    assert len(receiver.requests) == 1  # held, not sent again

    status, turned_on = await server.call(
        "PATCH",
        f"/api/v2/integrations/webhook/{cid}",
        [{"op": "replace", "path": "/on", "value": True}],
    )
    assert status == 200
    assert turned_on["_health"]["state"] == "healthy"
    await worker.run_until_idle()
    assert [r.json()["_id"] for r in receiver.requests] == ["e1", "e1"]
    assert (await configuration(server, cid))["_status"]["successCount"] == 1


async def test_turning_a_configuration_off_cancels_what_waits_for_it(
    server: Server, receiver: Receiver
) -> None:
    cid = await webhook(server, receiver.url)
    await post(server, "e1", "e2")
    status, off = await server.call(
        "PATCH",
        f"/api/v2/integrations/webhook/{cid}",
        [{"op": "replace", "path": "/on", "value": False}],
    )
    assert status == 200
    assert off["_health"] == {
        "state": "off",
        "reason": "turned off",
        "since": server.clock(),
        "pending": 0,
    }
    await server.deliver()
    assert receiver.requests == []
    assert (await server.runtime.store.deliveries.counts())[DeliveryState.CANCELLED] == 2


async def test_changing_a_paused_configuration_probes_it_at_once(
    server: Server, receiver: Receiver, settings_factory: Callable[..., Settings]
) -> None:
    receiver.default = (401, "bad key", {})
    cid = await webhook(server, receiver.url)
    await post(server, "e1", "e2")
    worker = server.runtime.new_worker(
        settings_factory(breaker_threshold=1, configuration_concurrency=1)
    )
    await worker.run_until_idle()
    assert (await configuration(server, cid))["_health"]["state"] == "paused"
    assert len(receiver.requests) == 1  # e2 waits

    receiver.default = (200, "ok", {})
    status, _ = await server.call(
        "PATCH",
        f"/api/v2/integrations/webhook/{cid}",
        [{"op": "replace", "path": "/config/url", "value": receiver.url + "/fixed"}],
    )
    assert status == 200
    await worker.run_until_idle()  # no clock moved: the change made the probe due now
    assert (await configuration(server, cid))["_health"]["state"] == "healthy"
    assert receiver.requests[-1].path == "/fixed"


async def test_health_starts_healthy_and_says_failing_before_the_breaker_opens(
    server: Server, receiver: Receiver
) -> None:
    cid = await webhook(server, receiver.url)
    assert (await configuration(server, cid))["_health"] == {"state": "healthy", "pending": 0}
    receiver.answer(500, "oops")
    await post(server, "e1")
    await server.deliver()
    health = (await configuration(server, cid))["_health"]
    assert health == {
        "state": "failing",
        "reason": "the last attempt failed: HTTP 500",
        "since": server.clock(),
        "pending": 1,
    }


async def test_exactly_one_claim_gets_the_probe_of_a_paused_configuration(
    server: Server, receiver: Receiver, settings_factory: Callable[..., Settings]
) -> None:
    receiver.default = (500, "down", {})
    await webhook(server, receiver.url)
    await post(server, *(f"e{i}" for i in range(5)))
    worker = server.runtime.new_worker(
        settings_factory(breaker_threshold=1, configuration_concurrency=1)
    )
    await worker.run_until_idle()
    server.clock.advance(5)
    async with running(server.runtime.settings, with_worker=False, clock=server.clock) as other:
        claims = await asyncio.gather(
            *(
                store.deliveries.claim_due(
                    owner=f"w{i}", now=server.clock(), limit=10, lease_ms=10_000
                )
                for i, store in enumerate([server.runtime.store, other.store] * 2)
            )
        )
    handed = [d for claim in claims for d in claim.deliveries]
    assert len(handed) == 1
    assert handed[0].probe


async def test_a_worker_holds_no_more_entry_bytes_than_its_budget(
    server: Server,
    receiver: Receiver,
    settings_factory: Callable[..., Settings],
    start: Start,
) -> None:
    receiver.gate = asyncio.Event()  # every request is held: what the worker holds stays
    await webhook(server, receiver.url)
    big = "x" * 100_000  # each entry about 100 kB
    for i in range(30):
        status, _ = await server.call("POST", "/api/v2/events", flag_event(f"e{i}", comment=big))
        assert status == 202
    budget = 1024 * 1024
    worker = await start(settings_factory(worker_held_bytes=budget, request_timeout=60))
    worker.wake()
    await receiver.wait_for(10)
    await asyncio.sleep(0.3)  # a worker that ignored the budget would have sent more by now
    # 10 entries of ~100 kB fit in 1 MiB; the 11th does not (one is always taken).
    assert 10 <= len(receiver.requests) <= 11
    receiver.gate.set()
    await receiver.wait_for(30)
    assert len({r.json()["_id"] for r in receiver.requests}) == 30
