"""The delivery store under concurrency: claims, leases, exact counters, a bounded error log.

Several `Store`s on one database stand for several worker processes: each has its own engine,
pool and connections, so PostgreSQL sees truly concurrent transactions.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from conftest import POSTGRES_URL, Database
from pushgate.breaker import BreakerPolicy
from pushgate.domain import DeliveryState
from pushgate.settings import Settings
from pushgate.store import Failure, NewEvent, Result, Store

NOW = 1_700_000_000_000
# These tests are about claims, leases and counts; the breaker has tests of its own.
NEVER_OPENS = BreakerPolicy(threshold=10**9)
LEASE_MS = 60_000
OpenStore = Callable[..., Awaitable[Store]]


@pytest.fixture
async def open_store(settings_factory: Callable[..., Settings]) -> AsyncIterator[OpenStore]:
    """Opens stores on the test database (one engine each, like separate processes)."""
    opened: list[Store] = []

    async def open_(*, shard: int = 0, **overrides: Any) -> Store:
        store = await Store.open(settings_factory(**overrides), status_shard=shard)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


async def seed(store: Store, *, configurations: int = 1, events: int = 100) -> list[str]:
    """Configurations, and events that each go to every configuration; returns their ids."""
    ids = [
        (
            await store.configurations.create(
                integration_key="webhook",
                name=f"hook {i}",
                on=True,
                tags=[],
                config={"url": "https://example.com"},
                secrets=None,
                statements=[],
                now=NOW,
            )
        ).id
        for i in range(configurations)
    ]
    batch = [NewEvent(f"e{i:05d}", NOW, "flag", {"_id": f"e{i:05d}"}, ids) for i in range(events)]
    await store.deliveries.enqueue(batch, now=NOW)
    return ids


def outcome(delivery: Any, state: DeliveryState, *, failed: bool = False) -> Result:
    failure = Failure(500, "boom", None, None) if failed else None
    return Result(
        delivery.id, delivery.configuration_id, delivery.event_id, delivery.attempt, NOW, state,
        failure=failure,
    )  # fmt: skip


async def test_claims_never_exceed_their_limit(open_store: OpenStore) -> None:
    store = await open_store()
    await seed(store, events=250)
    claimed = (
        await store.deliveries.claim_due(owner="w", now=NOW, limit=100, lease_ms=LEASE_MS)
    ).deliveries
    assert len(claimed) == 100
    assert len({c.id for c in claimed}) == 100


async def test_concurrent_claims_never_hand_one_delivery_to_two_workers(
    open_store: OpenStore, backend: str
) -> None:
    stores = [await open_store() for _ in range(4)]
    await seed(stores[0], events=400)
    claims: dict[str, list[int]] = {}

    async def claim_all(name: str, store: Store) -> None:
        mine = claims.setdefault(name, [])
        while batch := (
            await store.deliveries.claim_due(owner=name, now=NOW, limit=25, lease_ms=LEASE_MS)
        ).deliveries:
            mine += [c.id for c in batch]

    await asyncio.gather(*(claim_all(f"w{i}", s) for i, s in enumerate(stores)))
    everything = [i for ids in claims.values() for i in ids]
    assert len(everything) == 400
    assert len(set(everything)) == 400
    if backend == "postgresql":  # SQLite may well let one writer take every batch in turn
        assert sum(1 for ids in claims.values() if ids) > 1  # the claims really interleaved


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_claim_skips_rows_another_transaction_holds_instead_of_waiting(
    open_store: OpenStore, database: Database
) -> None:
    store = await open_store()
    await seed(store, events=3)
    other = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": database.schema})
    try:
        async with other.transaction():
            locked = await other.fetchval(
                "SELECT id FROM deliveries ORDER BY id LIMIT 1 FOR UPDATE"
            )
            claim = store.deliveries.claim_due(owner="w", now=NOW, limit=10, lease_ms=LEASE_MS)
            claimed = (await asyncio.wait_for(claim, 10)).deliveries
    finally:
        await other.close()
    assert len(claimed) == 2
    assert locked not in {c.id for c in claimed}


async def test_extended_lease_keeps_a_slow_delivery_from_other_workers(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    await seed(store, events=1)
    [held] = (
        await store.deliveries.claim_due(owner="a", now=NOW, limit=1, lease_ms=LEASE_MS)
    ).deliveries

    later = NOW + 50_000
    renewed = await store.deliveries.extend_leases(
        [held.id], owner="a", now=later, lease_ms=LEASE_MS
    )
    assert renewed == {held.id}
    # Past the first lease, within the renewed one: nobody else may take it.
    assert (
        await store.deliveries.claim_due(owner="b", now=NOW + 70_000, limit=1, lease_ms=LEASE_MS)
    ).deliveries == []
    # Past the renewed lease too: the worker is presumed dead.
    assert len((await store.deliveries.claim_due(
        owner="b", now=later + LEASE_MS, limit=1, lease_ms=LEASE_MS
    )).deliveries) == 1  # fmt: skip


async def test_a_worker_cannot_renew_a_lease_another_worker_took(open_store: OpenStore) -> None:
    store = await open_store()
    await seed(store, events=1)
    [held] = (
        await store.deliveries.claim_due(owner="a", now=NOW, limit=1, lease_ms=LEASE_MS)
    ).deliveries
    await store.deliveries.claim_due(owner="b", now=NOW + LEASE_MS, limit=1, lease_ms=LEASE_MS)

    renewed = await store.deliveries.extend_leases(
        [held.id], owner="a", now=NOW + LEASE_MS, lease_ms=LEASE_MS
    )
    assert renewed == set()
    assert [lease.delivery_id for lease in await store.deliveries.held_by("b")] == [held.id]
    assert await store.deliveries.held_by("a") == []


async def test_a_worker_that_lost_its_lease_does_not_reschedule_the_delivery(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    await seed(store, events=1)
    [stale] = (
        await store.deliveries.claim_due(owner="a", now=NOW, limit=1, lease_ms=LEASE_MS)
    ).deliveries
    await store.deliveries.claim_due(owner="b", now=NOW + LEASE_MS, limit=1, lease_ms=LEASE_MS)

    retry = Result(
        stale.id, stale.configuration_id, stale.event_id, stale.attempt, NOW, DeliveryState.PENDING,
        next_at=NOW + 5_000, failure=Failure(503, "busy", None, None),
    )  # fmt: skip
    await store.deliveries.record([retry], owner="a")

    [lease] = await store.deliveries.held_by("b")
    assert lease.expires_at == NOW + 2 * LEASE_MS  # still b's, on b's lease
    [configuration] = await store.configurations.all()
    assert configuration.status.error_count == 1  # the failed attempt happened: it counts


async def test_a_delivery_is_counted_once_when_two_workers_report_it(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    await seed(store, events=1)
    [first] = (
        await store.deliveries.claim_due(owner="a", now=NOW, limit=1, lease_ms=LEASE_MS)
    ).deliveries
    [second] = (
        await store.deliveries.claim_due(owner="b", now=NOW + LEASE_MS, limit=1, lease_ms=LEASE_MS)
    ).deliveries
    await store.deliveries.record([outcome(second, DeliveryState.SUCCEEDED)], owner="b")
    await store.deliveries.record([outcome(first, DeliveryState.SUCCEEDED)], owner="a")

    [configuration] = await store.configurations.all()
    assert configuration.status.success_count == 1


@pytest.mark.parametrize("shards", ["one shared shard", "a shard each"])
async def test_concurrent_records_keep_exact_counts(open_store: OpenStore, shards: str) -> None:
    workers = 6
    stores = [
        await open_store(shard=0 if shards == "one shared shard" else i) for i in range(workers)
    ]
    configuration_ids = await seed(stores[0], configurations=8, events=60)  # 480 deliveries

    async def work(name: str, store: Store) -> None:
        rand = random.Random(name)
        while batch := (
            await store.deliveries.claim_due(owner=name, now=NOW, limit=40, lease_ms=LEASE_MS)
        ).deliveries:
            results = [
                outcome(c, DeliveryState.FAILED, failed=True)
                if c.event_id.endswith(("3", "7"))
                else outcome(c, DeliveryState.SUCCEEDED)
                for c in batch
            ]
            rand.shuffle(results)  # any order in, one lock order inside
            await store.deliveries.record(results, owner=name, breaker=NEVER_OPENS)

    await asyncio.gather(*(work(f"w{i}", s) for i, s in enumerate(stores)))

    rows = {row.id: row.status for row in await stores[0].configurations.all()}
    assert set(rows) == set(configuration_ids)
    for status in rows.values():
        assert (status.success_count, status.error_count) == (48, 12)
    counts = await stores[0].deliveries.counts()
    assert counts[DeliveryState.SUCCEEDED] == 8 * 48
    assert counts[DeliveryState.FAILED] == 8 * 12


async def test_error_log_stays_bounded_under_concurrent_failures(
    open_store: OpenStore,
) -> None:
    size = 5
    stores = [await open_store(shard=i, error_log_size=size) for i in range(6)]
    [configuration_id] = await seed(stores[0], events=300)

    async def fail_all(name: str, store: Store) -> None:
        while batch := (
            await store.deliveries.claim_due(owner=name, now=NOW, limit=10, lease_ms=LEASE_MS)
        ).deliveries:
            results = [outcome(c, DeliveryState.FAILED, failed=True) for c in batch]
            await store.deliveries.record(results, owner=name, breaker=NEVER_OPENS)

    await asyncio.gather(*(fail_all(f"w{i}", s) for i, s in enumerate(stores)))

    errors = await stores[0].configurations.errors(configuration_id, limit=1000)
    assert len(errors) == size
    [row] = await stores[0].configurations.all()
    assert row.status.error_count == 300


async def test_held_by_lists_what_a_worker_claimed_and_has_not_recorded(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    await seed(store, events=3)
    claimed = (
        await store.deliveries.claim_due(owner="a", now=NOW, limit=3, lease_ms=LEASE_MS)
    ).deliveries
    await store.deliveries.record([outcome(claimed[0], DeliveryState.SUCCEEDED)], owner="a")
    await store.deliveries.release([claimed[1].id], owner="a", now=NOW)

    held = await store.deliveries.held_by("a")
    assert [(h.delivery_id, h.event_id) for h in held] == [(claimed[2].id, claimed[2].event_id)]
    assert held[0].expires_at == NOW + LEASE_MS
    # The released one is due at once for anyone, its claim's attempt not counted.
    again = (await store.deliveries.claim_due(owner="b", now=NOW, limit=3, lease_ms=1)).deliveries
    assert [(c.id, c.attempt) for c in again] == [(claimed[1].id, claimed[1].attempt)]


async def test_a_claim_takes_no_more_entry_bytes_than_asked_but_always_one(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    [cid] = await seed(store, events=0)
    batch = [
        NewEvent(f"b{i}", NOW, "flag", {"_id": f"b{i}", "pad": "x" * 1000}, [cid])
        for i in range(20)
    ]
    await store.deliveries.enqueue(batch, now=NOW)
    claim = await store.deliveries.claim_due(
        owner="w", now=NOW, limit=100, lease_ms=LEASE_MS, max_bytes=5000
    )
    assert 1 <= len(claim.deliveries) <= 5
    assert sum(d.size for d in claim.deliveries) <= 5000
    assert all(d.size > 1000 for d in claim.deliveries)
    assert claim.more
    tiny = await store.deliveries.claim_due(
        owner="w", now=NOW, limit=100, lease_ms=LEASE_MS, max_bytes=1
    )
    assert len(tiny.deliveries) == 1
