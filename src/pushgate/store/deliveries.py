"""Events and deliveries: enqueue, claim due work under a lease, record outcomes in batches.

Every verb works on a batch in one transaction: claiming and completing deliveries one row per
transaction is about twenty times slower than a hundred at a time.

Concurrency (PostgreSQL, many workers): claims skip rows another transaction holds (`FOR UPDATE
SKIP LOCKED`), so workers never wait for each other there. `record` takes its locks in one
order — delivery rows it holds, then the configurations whose error log it writes (by id), then
its own status shard rows (by configuration id) — so two workers cannot deadlock, and locks the
configuration row only to keep the error log trimmed exactly: successes never wait.
"""

from __future__ import annotations

import contextlib
import functools
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.domain import DeliveryState
from pushgate.store.database import Transactions
from pushgate.store.listener import Listener
from pushgate.store.tables import (
    configuration_status,
    configurations,
    deliveries,
    error_log,
    events,
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An accepted event and the configurations whose policy wants it."""

    id: str
    date: int
    kind: str
    payload: dict[str, Any]
    configuration_ids: Sequence[str]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased to a worker, with what it needs to build the request."""

    id: int
    event_id: str
    configuration_id: str
    attempt: int
    payload: dict[str, Any]
    configuration_version: int | None  # None: the configuration was deleted


@dataclass(frozen=True, slots=True)
class Lease:
    """A delivery a worker holds: claimed, not yet recorded or released."""

    delivery_id: int
    event_id: str
    configuration_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Failure:
    """What the error log records of a failed attempt."""

    status_code: int | None
    response_body: str | None
    error: str | None
    hint: str | None


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one attempt, to be recorded.

    `state` PENDING means "retry at `next_at`"; SUCCEEDED and FAILED are final; CANCELLED
    means the attempt was not made (the configuration was turned off or deleted).
    """

    delivery_id: int
    configuration_id: str
    event_id: str
    attempt: int
    at: int
    state: DeliveryState
    next_at: int | None = None
    failure: Failure | None = None


class DeliveryStore:
    """The delivery queue and the status counters it feeds.

    `status_shard` is the `configuration_status` row this store adds its counts to; give every
    process that records its own (reads sum the shards). `listener`, on PostgreSQL, carries the
    wake-ups: `enqueue` notifies its channel, `listen` subscribes to it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        error_log_size: int,
        status_shard: int = 0,
        listener: Listener | None = None,
    ) -> None:
        self._engine = engine
        self._tx = Transactions(engine)
        self._error_log_size = error_log_size
        self._shard = status_shard
        self._listener = listener
        self._dialect = engine.dialect.name

    def dispose(self) -> None:
        """Close the connections of the hot path's own engine (SQLite)."""
        self._tx.dispose()

    def _insert(self, table: Any) -> Any:
        return (postgresql if self._dialect == "postgresql" else sqlite).insert(table)

    async def enqueue(self, batch: Sequence[NewEvent], *, now: int) -> list[str]:
        """Store events not seen before, each with its deliveries; return the new event ids.

        Idempotent on the event id: an id already stored is skipped with its deliveries.
        """
        if not batch:
            return []
        rows = [
            {"id": e.id, "date": e.date, "kind": e.kind, "received_at": now, "payload": e.payload}
            for e in batch
        ]
        async with self._engine.begin() as conn:
            inserted = await conn.execute(
                self._insert(events).on_conflict_do_nothing().returning(events.c.id), rows
            )
            new_ids = {row.id for row in inserted}
            targets = [
                {
                    "event_id": e.id,
                    "configuration_id": configuration_id,
                    "state": DeliveryState.PENDING.value,
                    "attempts": 0,
                    "available_at": now,
                    "created_at": now,
                }
                for e in batch
                if e.id in new_ids
                for configuration_id in e.configuration_ids
            ]
            if targets:
                await conn.execute(deliveries.insert(), targets)
                if self._listener is not None:
                    # Sent at commit, never for a rolled-back transaction.
                    await conn.execute(select(func.pg_notify(self._listener.channel, "")))
        return [e.id for e in batch if e.id in new_ids]

    @contextlib.asynccontextmanager
    async def listen(self, wake: Callable[[], None]) -> AsyncIterator[None]:
        """Call `wake` whenever any process enqueues deliveries, until the block exits.

        PostgreSQL only; on SQLite the block just runs (the in-process worker is woken
        directly, and polling covers the rest).
        """
        if self._listener is None:
            yield
            return
        async with self._listener.listening(wake):
            yield

    async def claim_due(self, *, owner: str, now: int, limit: int, lease_ms: int) -> list[Claimed]:
        """Lease up to `limit` due deliveries (waiting ones, and ones whose lease expired).

        On PostgreSQL rows that another claim holds are skipped, not waited for. The selection
        is a MATERIALIZED CTE so that it runs exactly once: as an `IN (subquery)` the planner
        may rescan it, and a rescan of `LIMIT … SKIP LOCKED` can pick other rows.
        """
        due = (
            select(deliveries.c.id)
            .where(
                deliveries.c.state == DeliveryState.PENDING.value,
                deliveries.c.available_at <= now,
            )
            .order_by(deliveries.c.available_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        claim = (
            update(deliveries)
            .where(deliveries.c.id.in_(select(due.c.id)))
            .values(
                lease_owner=owner,
                available_at=now + lease_ms,
                attempts=deliveries.c.attempts + 1,
            )
            .returning(
                deliveries.c.id,
                deliveries.c.event_id,
                deliveries.c.configuration_id,
                deliveries.c.attempts,
            )
        )
        return await self._tx.run(functools.partial(_claim, claim))

    async def record(self, results: Sequence[Result], *, owner: str) -> None:
        """Record outcomes: delivery states, status counters and error-log entries, at once.

        A final outcome (succeeded, failed, cancelled) is recorded by whoever reports it first
        while the delivery is pending, and counted once; a later report for the same delivery
        (a worker whose lease had expired) changes nothing. A retry is scheduled only while
        `owner` still holds the lease, so it cannot take a delivery from its new holder. Every
        failed attempt is counted and logged: it happened.
        """
        if results:
            await self._tx.run(functools.partial(self._record, results, owner))

    def _record(self, results: Sequence[Result], owner: str, conn: Connection) -> None:
        if self._dialect == "postgresql":
            # Lock this batch's delivery rows in id order before any statement updates
            # them in its own order: only workers whose leases overlap ever compete here.
            conn.execute(
                select(deliveries.c.id)
                .where(deliveries.c.id.in_(sorted({r.delivery_id for r in results})))
                .order_by(deliveries.c.id)
                .with_for_update()
            )
        succeeded = self._finish(conn, results, DeliveryState.SUCCEEDED)
        self._finish(conn, results, DeliveryState.FAILED)
        self._finish(conn, results, DeliveryState.CANCELLED)
        retries = [r for r in results if r.state is DeliveryState.PENDING]
        if retries:
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == bindparam("delivery_id"),
                    deliveries.c.state == DeliveryState.PENDING.value,
                    deliveries.c.lease_owner == owner,
                )
                .values(available_at=bindparam("next_at"), lease_owner=None),
                [{"delivery_id": r.delivery_id, "next_at": r.next_at} for r in retries],
            )
        failures = [r for r in results if r.failure is not None]
        self._count(conn, succeeded, failures)

    def _finish(
        self, conn: Connection, results: Sequence[Result], state: DeliveryState
    ) -> list[Result]:
        chosen = {r.delivery_id: r for r in results if r.state is state}
        if not chosen:
            return []
        done = conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(chosen)),
                deliveries.c.state == DeliveryState.PENDING.value,
            )
            .values(
                state=state.value,
                lease_owner=None,
                completed_at=max(r.at for r in chosen.values()),
            )
            .returning(deliveries.c.id)
        )
        return [chosen[row.id] for row in done]

    def _count(self, conn: Connection, succeeded: list[Result], failures: list[Result]) -> None:
        touched = {r.configuration_id for r in (*succeeded, *failures)}
        if not touched:
            return
        failing = sorted({r.configuration_id for r in failures})
        # One writer at a time per configuration's error log, so that each trim sees every
        # committed entry and the log never holds more than error_log_size rows. NO KEY UPDATE:
        # foreign-key checks (ingest inserting deliveries) do not wait for it.
        locked = set(
            (
                conn.execute(
                    select(configurations.c.id)
                    .where(configurations.c.id.in_(failing))
                    .order_by(configurations.c.id)
                    .with_for_update(key_share=True)
                )
            ).scalars()
            if failing
            else ()
        )
        others = sorted(touched - set(failing))
        existing = locked | set(
            (
                conn.execute(select(configurations.c.id).where(configurations.c.id.in_(others)))
            ).scalars()
            if others
            else ()
        )
        totals: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"success_count": 0, "error_count": 0, "last_success": None, "last_error": None}
        )
        for r in succeeded:
            total = totals[r.configuration_id]
            total["success_count"] += 1
            total["last_success"] = max(total["last_success"] or 0, r.at)
        for r in failures:
            total = totals[r.configuration_id]
            total["error_count"] += 1
            total["last_error"] = max(total["last_error"] or 0, r.at)
        rows = [
            {"configuration_id": cid, "shard": self._shard, **total}
            for cid, total in sorted(totals.items())
            if cid in existing
        ]
        if rows:
            upsert = self._insert(configuration_status)
            current, new = configuration_status.c, upsert.excluded
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[current.configuration_id, current.shard],
                    set_={
                        "success_count": current.success_count + new.success_count,
                        "error_count": current.error_count + new.error_count,
                        "last_success": _latest(current.last_success, new.last_success),
                        "last_error": _latest(current.last_error, new.last_error),
                    },
                ),
                rows,
            )
        logged = [r for r in failures if r.configuration_id in existing]
        if logged:
            conn.execute(
                error_log.insert(),
                [
                    {
                        "configuration_id": r.configuration_id,
                        "event_id": r.event_id,
                        "attempt": r.attempt,
                        "timestamp": r.at,
                        "status_code": r.failure.status_code,
                        "response_body": r.failure.response_body,
                        "error": r.failure.error,
                        "hint": r.failure.hint,
                        "will_retry": r.state is DeliveryState.PENDING,
                    }
                    for r in logged
                    if r.failure is not None
                ],
            )
            self._trim_error_log(conn, {r.configuration_id for r in logged})

    def _trim_error_log(self, conn: Connection, configuration_ids: set[str]) -> None:
        for configuration_id in sorted(configuration_ids):
            oldest_kept = (
                select(error_log.c.id)
                .where(error_log.c.configuration_id == configuration_id)
                .order_by(error_log.c.id.desc())
                .limit(1)
                .offset(self._error_log_size - 1)
                .scalar_subquery()
            )
            conn.execute(
                delete(error_log).where(
                    error_log.c.configuration_id == configuration_id,
                    error_log.c.id < oldest_kept,
                )
            )

    async def extend_leases(
        self, delivery_ids: Sequence[int], *, owner: str, now: int, lease_ms: int
    ) -> set[int]:
        """Renew `owner`'s leases on these deliveries to `now + lease_ms`; returns those renewed.

        A delivery missing from the answer is no longer held by `owner`: it was recorded, or its
        lease expired and another worker claimed it.
        """
        if not delivery_ids:
            return set()
        renew = (
            update(deliveries)
            .where(
                deliveries.c.id.in_(sorted(delivery_ids)),
                deliveries.c.lease_owner == owner,
                deliveries.c.state == DeliveryState.PENDING.value,
            )
            .values(available_at=now + lease_ms)
            .returning(deliveries.c.id)
        )
        return await self._tx.run(lambda conn: set(conn.execute(renew).scalars()))

    async def held_by(self, owner: str) -> list[Lease]:
        """The deliveries `owner` holds: claimed and neither recorded nor released."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.event_id,
                    deliveries.c.configuration_id,
                    deliveries.c.available_at,
                )
                .where(
                    deliveries.c.lease_owner == owner,
                    deliveries.c.state == DeliveryState.PENDING.value,
                )
                .order_by(deliveries.c.id)
            )
            return [Lease(*row) for row in rows]

    async def release(self, delivery_ids: Sequence[int], *, owner: str, now: int) -> None:
        """Give back leased deliveries that were not attempted (graceful shutdown)."""
        if not delivery_ids:
            return
        give_back = (
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(delivery_ids)),
                deliveries.c.lease_owner == owner,
                deliveries.c.state == DeliveryState.PENDING.value,
            )
            .values(available_at=now, lease_owner=None, attempts=deliveries.c.attempts - 1)
        )
        await self._tx.run(lambda conn: conn.execute(give_back))

    async def prune(self, *, received_before: int, limit: int) -> int:
        """Delete up to `limit` events received before `received_before` whose deliveries are
        all finished, with those deliveries; returns how many events went.

        Status counters and the error log are kept: they are totals and their own bounded log.
        An event id that is pruned is no longer remembered, so posting it again is accepted.
        """
        waiting = (
            select(deliveries.c.id)
            .where(
                deliveries.c.event_id == events.c.id,
                deliveries.c.state == DeliveryState.PENDING.value,
            )
            .exists()
        )
        old = (
            select(events.c.id)
            .where(events.c.received_at < received_before, ~waiting)
            .order_by(events.c.received_at)
            .limit(limit)
        )

        def work(conn: Connection) -> int:
            chosen = list(conn.execute(old).scalars())
            if not chosen:
                return 0
            # Deliveries first: the same order on both backends, whatever the cascade does.
            conn.execute(delete(deliveries).where(deliveries.c.event_id.in_(chosen)))
            conn.execute(delete(events).where(events.c.id.in_(chosen)))
            return len(chosen)

        return await self._tx.run(work)

    async def counts(self) -> dict[DeliveryState, int]:
        """How many deliveries are in each state."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
                )
            ).all()
            found = {DeliveryState(state): count for state, count in rows}
        return {state: found.get(state, 0) for state in DeliveryState}

    async def next_due(self) -> int | None:
        """When the earliest pending delivery becomes due (or its lease expires)."""
        async with self._engine.connect() as conn:
            value = await conn.scalar(
                select(func.min(deliveries.c.available_at)).where(
                    deliveries.c.state == DeliveryState.PENDING.value
                )
            )
        return int(value) if value is not None else None


def _claim(claim: Any, conn: Connection) -> list[Claimed]:
    """Run the claim statement, then fetch what the attempts need: payloads and versions."""
    # Rows are unpacked as tuples: attribute access on rows shows in profiles here.
    leased = sorted(tuple(row) for row in conn.execute(claim))
    if not leased:
        return []
    found = conn.execute(
        select(events.c.id, events.c.payload).where(
            events.c.id.in_({event_id for _, event_id, _, _ in leased})
        )
    )
    payloads = dict(tuple(row) for row in found)
    found = conn.execute(
        select(configurations.c.id, configurations.c.version).where(
            configurations.c.id.in_({cid for _, _, cid, _ in leased})
        )
    )
    versions = dict(tuple(row) for row in found)
    return [
        Claimed(id_, event_id, cid, attempts, payloads[event_id], versions.get(cid))
        for id_, event_id, cid, attempts in leased
    ]


def _latest(current: Any, new: Any) -> Any:
    """The later of two nullable timestamps, portable across SQLite and PostgreSQL."""
    return case(
        (new.is_(None), current),
        (current.is_(None), new),
        (new > current, new),
        else_=current,
    )
