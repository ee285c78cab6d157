"""Events and deliveries: enqueue, claim due work under a lease, record outcomes in batches.

Every verb works on a batch in one transaction: claiming and completing deliveries one row per
transaction is about twenty times slower than a hundred at a time.

Claims are fair: each configuration that is on and not paused gets its turn (its oldest due
deliveries, up to the room the worker has for it), so one configuration's backlog never stands
in front of another's new event. A paused configuration whose probe is due gives one delivery,
the probe, to exactly one claim. Recording applies the breaker (breaker.py) per configuration,
in the same transaction as the delivery states and counters.

Concurrency (PostgreSQL, many workers): claims skip delivery rows another transaction holds
(`FOR UPDATE SKIP LOCKED`), so workers never wait for each other there; a probe is taken by
one conditional update of the breaker row. `record` takes its locks in one order (status.py):
delivery rows it holds, then the configurations whose error log or breaker it writes (by id),
then their breaker rows, then its own status shard rows, so two workers cannot deadlock.
Successes of a healthy configuration take no configuration lock.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, Text, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.breaker import Breaker, BreakerAction, BreakerPolicy, Outcome
from pushgate.domain import DeliveryState
from pushgate.events import StoredEntry
from pushgate.store.attempts import FAILURE, SUCCESS, AttemptRow, AttemptWriter, Trace
from pushgate.store.database import (
    IDS_PER_QUERY,
    Transactions,
    bare_sqlite,
    dialect_insert,
    reading,
    rows_in,
)
from pushgate.store.listener import Listener
from pushgate.store.status import Counted, StatusWriter, load_breakers, save_breaker
from pushgate.store.tables import configuration_health, configurations, deliveries, events
from pushgate.values import value_class


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An accepted event and the configurations whose policy wants it."""

    id: str
    date: int
    kind: str
    payload: dict[str, Any]
    configuration_ids: Sequence[str]


class ConfigurationsChanged(Exception):
    """Configurations were turned on, off or changed since the events were matched."""


# The versions of the configurations that are on: what a match of events depends on.
_ENABLED_VERSIONS_SQLITE = 'SELECT id, version FROM configurations WHERE "on" = 1'
_ENABLED_VERSIONS = select(configurations.c.id, configurations.c.version).where(
    configurations.c.on.is_(True)
)


@value_class
class Claimed:
    """A delivery leased to a worker, with what it needs to build the request.

    `probe` marks the one delivery a paused configuration lets through to test its receiver.
    """

    id: int
    event_id: str
    configuration_id: str
    attempt: int
    payload: Mapping[str, Any]
    configuration_version: int | None  # None: the configuration was deleted
    probe: bool = False
    size: int = 0  # bytes of the entry as stored (what holding it costs)


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim leased, and what it saw.

    `paused` maps each paused configuration it passed over to when its probe is due. `more`
    says some configuration had more due than the claim took: claim again soon.
    """

    deliveries: list[Claimed] = field(default_factory=list)
    paused: dict[str, int] = field(default_factory=dict)
    more: bool = False


@dataclass(frozen=True, slots=True)
class Lease:
    """A delivery a worker holds: claimed, not yet recorded or released."""

    delivery_id: int
    event_id: str
    configuration_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed attempt tells: what the error log records, and what the breaker needs
    (`retryable`, the receiver's `retry_after` in seconds)."""

    status_code: int | None
    response_body: str | None
    error: str | None
    hint: str | None
    retryable: bool = True
    retry_after: float | None = None


@value_class
class Result:
    """The outcome of one attempt, to be recorded.

    `state` PENDING means "retry at `next_at`"; SUCCEEDED and FAILED are final; CANCELLED
    means the attempt was not made (the configuration was turned off or deleted), SKIPPED that
    the integration had nothing to send for the event. The breaker
    may turn any failure into "held": kept pending, not charged, until the configuration
    resumes.
    """

    delivery_id: int
    configuration_id: str
    event_id: str
    attempt: int
    at: int
    state: DeliveryState
    next_at: int | None = None
    failure: Failure | None = None
    probe: bool = False
    duration_ms: int | None = None  # how long the attempt took; None: none was made
    trace: Trace | None = None  # what the attempt log keeps; None: not logged

    def outcome(self) -> Outcome | None:
        """This attempt as the breaker sees it; None when no attempt was made (cancelled,
        skipped), which tells the breaker nothing."""
        if self.state in (DeliveryState.CANCELLED, DeliveryState.SKIPPED):
            return None
        failure = self.failure
        if failure is None:
            return Outcome(at=self.at, ok=True, probe=self.probe)
        return Outcome(
            at=self.at,
            ok=False,
            retryable=failure.retryable,
            status_code=failure.status_code,
            retry_after=failure.retry_after,
            probe=self.probe,
            description=failure.error or f"HTTP {failure.status_code}",
        )


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """A configuration whose breaker an outcome moved, as a record saw it."""

    configuration_id: str
    action: BreakerAction
    breaker: Breaker


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording changed beyond the deliveries themselves; `given_up` names the
    configuration of each delivery this record finished as failed (counted once, whoever
    reports it)."""

    changes: list[BreakerChange] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)

    @property
    def stopped(self) -> set[str]:
        """Configurations that are now paused or off: deliveries held for them wait."""
        return {c.configuration_id for c in self.changes if c.breaker.paused or c.breaker.off}


# The breaker `record` applies unless told otherwise (the worker passes its settings' one).
DEFAULT_BREAKER = BreakerPolicy()


class DeliveryStore:
    """The delivery queue and the status and breakers it feeds.

    `status_shard` is the `configuration_status` row this store adds its counts to; give every
    process that records its own (reads sum the shards). `listener`, on PostgreSQL, carries the
    wake-ups: `enqueue` notifies its channel, `listen` subscribes to it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        transactions: Transactions,
        *,
        error_log_size: int,
        attempt_log_size: int = 1000,
        status_shard: int = 0,
        listener: Listener | None = None,
    ) -> None:
        self._engine = engine
        self._tx = transactions
        self._listener = listener
        self._dialect = engine.dialect.name
        self._rotation = itertools.count()  # where the next claim starts its round
        self._status = StatusWriter(
            dialect=self._dialect, shard=status_shard, error_log_size=error_log_size
        )
        self._attempts = AttemptWriter(dialect=self._dialect, size=attempt_log_size)

    async def enqueue(
        self, batch: Sequence[NewEvent], *, now: int, matched: Mapping[str, int] | None = None
    ) -> list[str]:
        """Store events not seen before, each with its deliveries; return the new event ids.

        Idempotent on the event id: an id already stored is skipped with its deliveries, and
        of several events in `batch` with one id only the first counts. `matched` (id →
        version of every configuration that is on, as the events were matched against) is
        checked in the same transaction: when it is out of date, nothing is written and
        `ConfigurationsChanged` says so, so that the events are matched again.
        """
        if not batch:
            return []
        first: dict[str, NewEvent] = {}
        for e in batch:
            first.setdefault(e.id, e)
        firsts = list(first.values())

        def work(conn: Connection) -> set[str]:
            if matched is not None:
                if self._dialect == "sqlite":  # the bare driver: this runs on every commit
                    versions = bare_sqlite(conn).execute(_ENABLED_VERSIONS_SQLITE)
                else:
                    versions = conn.execute(_ENABLED_VERSIONS)
                current = dict(tuple(row) for row in versions)
                if current != matched:
                    raise ConfigurationsChanged()
            if self._dialect == "sqlite":
                return _enqueue_sqlite(conn, firsts, now)
            insert_events = (
                dialect_insert(self._dialect, events)
                .on_conflict_do_nothing()
                .returning(events.c.id)
            )
            rows = [
                {
                    "id": e.id,
                    "date": e.date,
                    "kind": e.kind,
                    "received_at": now,
                    "payload": e.payload,
                }
                for e in firsts
            ]
            new_ids = {row.id for row in conn.execute(insert_events, rows)}
            targets = [
                {
                    "event_id": e.id,
                    "configuration_id": configuration_id,
                    "state": DeliveryState.PENDING.value,
                    "attempts": 0,
                    "available_at": now,
                    "created_at": now,
                }
                for e in firsts
                if e.id in new_ids
                for configuration_id in e.configuration_ids
            ]
            if targets:
                conn.execute(deliveries.insert(), targets)
                if self._listener is not None:
                    # Sent at commit, never for a rolled-back transaction.
                    conn.execute(select(func.pg_notify(self._listener.channel, "")))
            return new_ids

        new_ids = await self._tx.run(work)
        return [e.id for e in firsts if e.id in new_ids]

    async def _notify(self, conn: Any) -> None:
        if self._listener is not None:
            # Sent at commit, never for a rolled-back transaction.
            await conn.execute(select(func.pg_notify(self._listener.channel, "")))

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

    async def claim_due(
        self,
        *,
        owner: str,
        now: int,
        limit: int,
        lease_ms: int,
        room: int | None = None,
        rooms: Mapping[str, int] | None = None,
        max_bytes: int | None = None,
    ) -> Claim:
        """Lease up to `limit` due deliveries (waiting ones, and ones whose lease expired),
        shared fairly among the configurations that are on and not paused, and, with
        `max_bytes`, no more than fit in that many bytes of entries (one always does).

        Each configuration gets at most its room: `rooms[id]`, else `room` (default `limit`).
        A first pass gives each an equal share of `limit`; a second pass tops up those that
        had more, in turn. A paused configuration whose probe is due gives one delivery, the
        probe, and its pause is extended by a lease so that no other claim probes it too.
        """
        return await self._tx.run(
            functools.partial(
                self._claim,
                owner=owner,
                now=now,
                limit=limit,
                lease_ms=lease_ms,
                room=limit if room is None else room,
                rooms=rooms or {},
                max_bytes=max_bytes,
            )
        )

    def _claim(
        self,
        conn: Connection,
        *,
        owner: str,
        now: int,
        limit: int,
        lease_ms: int,
        room: int,
        rooms: Mapping[str, int],
        max_bytes: int | None,
    ) -> Claim:
        candidates = _candidates(conn)
        paused: dict[str, int] = {}
        open_: list[tuple[str, int]] = []  # (configuration id, its room) for closed breakers
        probes: list[str] = []
        for cid, _, paused_until in candidates:
            space = min(rooms.get(cid, room), limit)
            if space <= 0:
                continue
            if paused_until is None:
                open_.append((cid, space))
            elif paused_until > now:
                paused[cid] = paused_until
            else:
                probes.append(cid)
        chosen: list[int] = []
        probe_ids: set[int] = set()
        for cid in probes:
            if len(chosen) >= limit:
                break
            found = _due_ids(conn, cid, now, 1)
            if found and _take_probe(conn, cid, now=now, lease_ms=lease_ms):
                chosen.extend(found)
                probe_ids.update(found)
        # Equal shares first, starting one configuration further on each claim, so that no
        # configuration is always served last when the limit binds; then top up in turn.
        turn = next(self._rotation) % len(open_) if open_ else 0
        order = open_[turn:] + open_[:turn]
        share = math.ceil((limit - len(chosen)) / len(order)) if order else 0
        took: dict[str, int] = {}
        more = False
        for cid, space in order:
            ask = min(share, space, limit - len(chosen))
            if ask <= 0:
                more = True
                break
            found = _due_ids(conn, cid, now, ask)
            chosen.extend(found)
            took[cid] = len(found)
            more = more or len(found) == ask
        for cid, space in order:
            if took.get(cid, 0) < min(share, space):
                continue  # nothing more was due (or the first pass did not get to it)
            ask = min(space - took[cid], limit - len(chosen))
            if ask > 0:
                found = _due_ids(conn, cid, now, ask, skip=took[cid])
                chosen.extend(found)
        if not chosen:
            return Claim(paused=paused, more=more)
        sizes = _entry_sizes(conn, chosen)
        if max_bytes is not None:
            fitting: list[int] = []
            total = 0
            for id_ in chosen:  # in the order of the turns: the cut keeps the claim fair
                total += sizes.get(id_, 0)
                if fitting and total > max_bytes:
                    more = True
                    break
                fitting.append(id_)
            chosen = fitting
        leased = sorted(_lease(conn, chosen, owner=owner, until=now + lease_ms))
        versions = {cid: version for cid, version, _ in candidates}
        payloads = _payloads(conn, {event_id for _, event_id, _, _ in leased})
        claimed = [
            Claimed(
                id_,
                event_id,
                cid,
                attempts,
                payloads[event_id],
                versions.get(cid),
                probe=id_ in probe_ids,
                size=sizes.get(id_, 0),
            )
            for id_, event_id, cid, attempts in leased
        ]
        return Claim(claimed, paused, more)

    async def record(
        self,
        results: Sequence[Result],
        *,
        owner: str,
        breaker: BreakerPolicy = DEFAULT_BREAKER,
    ) -> Recorded:
        """Record outcomes: delivery states, status counters, error-log entries and breakers.

        A final outcome (succeeded, failed, cancelled) is recorded by whoever reports it first
        while the delivery is pending, and counted once; a later report for the same delivery
        (a worker whose lease had expired) changes nothing. A retry is scheduled, and a
        delivery held, only while `owner` still holds the lease, so it cannot take a delivery
        from its new holder. Every failed attempt is counted and logged: it happened.
        `breaker` is the policy folded over each configuration's outcomes.
        """
        if not results:
            return Recorded()
        return await self._tx.run(functools.partial(self._record, results, owner, breaker))

    def _record(
        self, results: Sequence[Result], owner: str, breaker: BreakerPolicy, conn: Connection
    ) -> Recorded:
        if self._dialect == "postgresql":
            # Lock this batch's delivery rows in id order before any statement updates
            # them in its own order: only workers whose leases overlap ever compete here.
            conn.execute(
                select(deliveries.c.id)
                .where(deliveries.c.id.in_(sorted({r.delivery_id for r in results})))
                .order_by(deliveries.c.id)
                .with_for_update()
            )
        results, changes, locked = self._apply_breakers(conn, results, breaker)
        succeeded = self._finish(conn, results, DeliveryState.SUCCEEDED)
        given_up = self._finish(conn, results, DeliveryState.FAILED)
        self._finish(conn, results, DeliveryState.CANCELLED)
        self._finish(conn, results, DeliveryState.SKIPPED)
        _reschedule(conn, [r for r in results if r.state is DeliveryState.PENDING], owner)
        # Count only for configurations that still exist (one may be deleted meanwhile).
        failures = [r for r in results if r.failure is not None]
        others = {r.configuration_id for r in succeeded} - locked
        existing = locked | self._status.existing(conn, others)
        counted_successes = [r for r in succeeded if r.configuration_id in existing]
        counted_failures = [r for r in failures if r.configuration_id in locked]
        self._status.count(
            conn,
            [_counted(r) for r in counted_successes],
            [_counted(r) for r in counted_failures],
        )
        self._attempts.write(
            conn,
            sorted(
                (_logged(r) for r in (*counted_successes, *counted_failures) if r.trace),
                key=lambda row: row.at,
            ),
        )
        return Recorded(changes, [r.configuration_id for r in given_up])

    def _apply_breakers(
        self, conn: Connection, results: Sequence[Result], breaker: BreakerPolicy
    ) -> tuple[list[Result], list[BreakerChange], set[str]]:
        """Fold each configuration's outcomes, in order, into its breaker; write what moved.

        Returns the results (a held outcome becomes a pending result without a due time, that
        is due at once and uncharged, claimed again only once its configuration resumes), the
        breakers that moved, and the configurations it locked (those that exist and have a
        breaker row or a failure in this batch).
        """
        by_configuration: dict[str, list[Result]] = defaultdict(list)
        for r in sorted(results, key=lambda r: r.at):
            by_configuration[r.configuration_id].append(r)
        stored = load_breakers(conn, by_configuration, lock=False)
        # Configurations whose breaker may move or whose error log grows: lock, then re-read.
        moving = {
            cid
            for cid, rs in by_configuration.items()
            if cid in stored or any(r.failure is not None for r in rs)
        }
        locked = self._status.lock(conn, moving)
        stored = load_breakers(conn, locked, lock=True)
        held: set[int] = set()
        changes: list[BreakerChange] = []
        off: list[str] = []
        for cid in sorted(locked):
            before = state = stored.get(cid, Breaker())
            last = BreakerAction.NONE
            for r in by_configuration[cid]:
                outcome = r.outcome()
                if outcome is None:
                    continue
                decision = breaker.decide(state, outcome)
                state = decision.state
                if decision.action is not BreakerAction.NONE:
                    last = decision.action
                if decision.hold and r.failure is not None:
                    held.add(r.delivery_id)
            if state != before:
                save_breaker(conn, cid, state)
                changes.append(BreakerChange(cid, last, state))
                if state.off and not before.off:
                    off.append(cid)
        if off:
            self._status.turn_off(conn, off, now=max(r.at for r in results))
        adjusted = [
            replace(r, state=DeliveryState.PENDING, next_at=None) if r.delivery_id in held else r
            for r in results
        ]
        return adjusted, changes, locked

    def _finish(
        self, conn: Connection, results: Sequence[Result], state: DeliveryState
    ) -> list[Result]:
        chosen = {r.delivery_id: r for r in results if r.state is state}
        if not chosen:
            return []
        at = max(r.at for r in chosen.values())
        return [chosen[id_] for id_ in _finish_pending(conn, list(chosen), state, at)]

    async def extend_leases(
        self, delivery_ids: Sequence[int], *, owner: str, now: int, lease_ms: int
    ) -> set[int]:
        """Renew `owner`'s leases on these deliveries to `now + lease_ms`; returns those renewed.

        A delivery missing from the answer is no longer held by `owner`: it was recorded, or its
        lease expired and another worker claimed it.
        """
        if not delivery_ids:
            return set()
        ids, until = sorted(delivery_ids), now + lease_ms

        def work(conn: Connection) -> set[int]:
            raw = bare_sqlite(conn)
            if raw is not None:
                return {row[0] for row in rows_in(raw, _RENEW_SQLITE, ids, before=(until, owner))}
            renew = (
                update(deliveries)
                .where(*_leased(ids, owner))
                .values(available_at=until)
                .returning(deliveries.c.id)
            )
            return set(conn.execute(renew).scalars())

        return await self._tx.run(work)

    async def held_by(self, owner: str) -> list[Lease]:
        """The deliveries `owner` holds: claimed and neither recorded nor released."""
        async with reading(self._engine) as conn:
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
        """Give back leased deliveries that were not attempted (shutdown, a paused
        configuration): due at once, and the claim's attempt count undone."""
        if not delivery_ids:
            return
        ids = list(delivery_ids)

        def work(conn: Connection) -> None:
            raw = bare_sqlite(conn)
            if raw is not None:
                rows_in(raw, _RELEASE_SQLITE, ids, before=(now, owner))
                return
            give_back = (
                update(deliveries)
                .where(*_leased(ids, owner))
                .values(available_at=now, lease_owner=None, attempts=deliveries.c.attempts - 1)
            )
            conn.execute(give_back)

        await self._tx.run(work)

    async def replay(
        self,
        configuration_id: str,
        *,
        now: int,
        since: int | None = None,
        until: int | None = None,
        dry_run: bool = False,
    ) -> list[int]:
        """Queue again every failed delivery of a configuration whose event time (`date`) is
        in [since, until); returns their ids. Each starts a fresh retry schedule.

        Only deliveries that ended failed match: one that a replay already queued is pending
        until it succeeds or fails again, so replaying twice does not send it twice.
        `dry_run` only finds them.
        """
        window = select(events.c.id).where(events.c.id == deliveries.c.event_id)
        if since is not None:
            window = window.where(events.c.date >= since)
        if until is not None:
            window = window.where(events.c.date < until)
        matching = (
            deliveries.c.configuration_id == configuration_id,
            deliveries.c.state == DeliveryState.FAILED.value,
            window.exists(),
        )

        def work(conn: Connection) -> list[int]:
            if dry_run:
                return list(conn.execute(select(deliveries.c.id).where(*matching)).scalars())
            return sorted(
                conn.execute(_requeue(now).where(*matching).returning(deliveries.c.id)).scalars()
            )

        ids = await self._tx.run(work)
        if ids and not dry_run:
            await self._wake_others()
        return ids

    async def resend(self, configuration_id: str, event_id: str, *, now: int) -> bool:
        """Queue one finished delivery (succeeded or failed) again, with a fresh retry
        schedule; False when there is none to resend (pending already, or pruned)."""
        finished = (DeliveryState.SUCCEEDED.value, DeliveryState.FAILED.value)
        statement = _requeue(now).where(
            deliveries.c.configuration_id == configuration_id,
            deliveries.c.event_id == event_id,
            deliveries.c.state.in_(finished),
        )
        count: int = await self._tx.run(lambda conn: conn.execute(statement).rowcount)
        if count:
            await self._wake_others()
        return bool(count)

    async def _wake_others(self) -> None:
        """Tell the workers of other processes (PostgreSQL) that deliveries are due."""
        if self._listener is not None:
            async with self._engine.begin() as conn:
                await self._notify(conn)

    async def states(self, delivery_ids: Sequence[int]) -> dict[DeliveryState, int]:
        """How many of these deliveries are in each state (a replay's progress)."""
        found: dict[DeliveryState, int] = dict.fromkeys(DeliveryState, 0)
        async with reading(self._engine) as conn:
            for start in range(0, len(delivery_ids), IDS_PER_QUERY):
                chunk = list(delivery_ids[start : start + IDS_PER_QUERY])
                rows = await conn.execute(
                    select(deliveries.c.state, func.count())
                    .where(deliveries.c.id.in_(chunk))
                    .group_by(deliveries.c.state)
                )
                for state, count in rows:
                    found[DeliveryState(state)] += count
        return found

    async def prune(self, *, received_before: int, limit: int, now: int) -> int:
        """Delete up to `limit` events received before `received_before` whose deliveries are
        all finished, with those deliveries; returns how many events went.

        Deliveries held for a configuration that is off (after a 410) past the same age are
        cancelled first: a configuration turned on again gets what is within retention.
        Status counters and the error log are kept: they are totals and their own bounded log.
        An event id that is pruned is no longer remembered, so posting it again is accepted.
        """
        expired = (
            update(deliveries)
            .where(
                deliveries.c.state == DeliveryState.PENDING.value,
                deliveries.c.created_at < received_before,
                deliveries.c.configuration_id.in_(
                    select(configurations.c.id).where(configurations.c.on.is_(False))
                ),
            )
            .values(state=DeliveryState.CANCELLED.value, lease_owner=None, completed_at=now)
        )
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
            conn.execute(expired)
            chosen = list(conn.execute(old).scalars())
            if not chosen:
                return 0
            # Deliveries first: the same order on both backends, whatever the cascade does.
            conn.execute(delete(deliveries).where(deliveries.c.event_id.in_(chosen)))
            conn.execute(delete(events).where(events.c.id.in_(chosen)))
            return len(chosen)

        return await self._tx.run(work)

    async def stored(self, event_ids: Sequence[str]) -> set[str]:
        """Which of these event ids are stored."""
        found: set[str] = set()
        async with reading(self._engine) as conn:
            for start in range(0, len(event_ids), IDS_PER_QUERY):
                chunk = list(event_ids[start : start + IDS_PER_QUERY])
                found.update(
                    (await conn.execute(select(events.c.id).where(events.c.id.in_(chunk))))
                    .scalars()
                    .all()
                )
        return found

    async def counts(self) -> dict[DeliveryState, int]:
        """How many deliveries are in each state."""
        async with reading(self._engine) as conn:
            rows = (
                await conn.execute(
                    select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
                )
            ).all()
            found = {DeliveryState(state): count for state, count in rows}
        return {state: found.get(state, 0) for state in DeliveryState}

    async def next_due(self) -> int | None:
        """When the earliest pending delivery becomes due (or its lease expires)."""
        async with reading(self._engine) as conn:
            value = await conn.scalar(
                select(func.min(deliveries.c.available_at)).where(
                    deliveries.c.state == DeliveryState.PENDING.value
                )
            )
        return int(value) if value is not None else None


def _requeue(now: int) -> Any:
    """The update that makes deliveries due again, as if new (`where` to be added)."""
    return update(deliveries).values(
        state=DeliveryState.PENDING.value,
        attempts=0,
        available_at=now,
        lease_owner=None,
        completed_at=None,
    )


def _due(configuration_id: str, now: int, limit: int, *, skip: int = 0) -> Any:
    """The ids of a configuration's oldest due deliveries (rows another claim holds skipped)."""
    return (
        select(deliveries.c.id)
        .where(
            deliveries.c.configuration_id == configuration_id,
            deliveries.c.state == DeliveryState.PENDING.value,
            deliveries.c.available_at <= now,
        )
        .order_by(deliveries.c.available_at, deliveries.c.id)
        .limit(limit)
        .offset(skip)
        .with_for_update(skip_locked=True)
    )


# SQLite's hot statements, run on the bare driver inside the SQLAlchemy transaction: for the
# rows of a busy ingest, SQLAlchemy's per-row work costs more than SQLite's.
_EVENT_ROW = "(?, ?, ?, ?, ?)"
_EVENTS_PER_STATEMENT = 1000  # 5 parameters each, far below SQLite's 32,766
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (event_id, configuration_id, state, attempts, available_at,"
    " created_at) VALUES (?, ?, ?, 0, ?, ?)"
)


def _enqueue_sqlite(conn: Connection, batch: Sequence[NewEvent], now: int) -> set[str]:
    """Insert events (skipping ids already stored) and the deliveries of the new ones."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    new_ids: set[str] = set()
    for start in range(0, len(batch), _EVENTS_PER_STATEMENT):
        chunk = batch[start : start + _EVENTS_PER_STATEMENT]
        values = [
            value
            for e in chunk
            for value in (e.id, e.date, e.kind, now, json.dumps(e.payload, separators=(",", ":")))
        ]
        statement = (
            "INSERT INTO events (id, date, kind, received_at, payload) VALUES "  # noqa: S608 - placeholders only
            + ", ".join([_EVENT_ROW] * len(chunk))
            + " ON CONFLICT DO NOTHING RETURNING id"
        )
        new_ids.update(row[0] for row in raw.execute(statement, values))
    pending = DeliveryState.PENDING.value
    raw.executemany(
        _INSERT_DELIVERY,
        [
            (e.id, cid, pending, now, now)
            for e in batch
            if e.id in new_ids
            for cid in e.configuration_ids
        ],
    )
    return new_ids


def _reschedule(conn: Connection, retries: Sequence[Result], owner: str) -> None:
    """Make these deliveries due again at their retry time, or at once and uncharged when the
    breaker held them (no `next_at`), if `owner` still holds them."""
    if not retries:
        return
    rows = [
        (r.at if r.next_at is None else r.next_at, 1 if r.next_at is None else 0, r.delivery_id)
        for r in retries
    ]
    raw = bare_sqlite(conn)
    if raw is not None:
        raw.executemany(_RETRY_SQLITE, [(*row, owner) for row in rows])
        return
    conn.execute(
        update(deliveries)
        .where(
            deliveries.c.id == bindparam("delivery_id"),
            deliveries.c.state == DeliveryState.PENDING.value,
            deliveries.c.lease_owner == owner,
        )
        .values(
            available_at=bindparam("next_at"),
            lease_owner=None,
            attempts=deliveries.c.attempts - bindparam("uncharge"),
        ),
        [{"next_at": at, "uncharge": uncharge, "delivery_id": id_} for at, uncharge, id_ in rows],
    )


def _leased(ids: Sequence[int], owner: str) -> tuple[ColumnElement[bool], ...]:
    """The conditions of "these deliveries, still pending and leased to `owner`"."""
    return (
        deliveries.c.id.in_(ids),
        deliveries.c.lease_owner == owner,
        deliveries.c.state == DeliveryState.PENDING.value,
    )


def _take_probe(conn: Connection, configuration_id: str, *, now: int, lease_ms: int) -> bool:
    """Take the probe of a paused configuration whose probe is due: its pause is extended by a
    lease, so that no other claim takes a probe too (and, if this worker dies, the pause ends
    with the lease and another probe goes)."""
    taken = conn.execute(
        update(configuration_health)
        .where(
            configuration_health.c.configuration_id == configuration_id,
            configuration_health.c.paused_until <= now,
        )
        .values(paused_until=now + lease_ms)
    )
    return taken.rowcount == 1


# The claim's and the record's statements per row, in two forms: SQLAlchemy Core for
# PostgreSQL, the bare sqlite3 driver for SQLite (inside the same transaction), where
# SQLAlchemy's work per statement and per row cost more than SQLite's own.


# Every configuration that is on, with its version and its pause (None: not paused), by id.
_CANDIDATES = (
    select(configurations.c.id, configurations.c.version, configuration_health.c.paused_until)
    .select_from(configurations.outerjoin(configuration_health))
    .where(configurations.c.on.is_(True))
    .order_by(configurations.c.id)
)


def _candidates(conn: Connection) -> list[tuple[str, int, int | None]]:
    """The configurations a claim may take from (`_CANDIDATES`). Every claim asks, and the
    worker inside `serve` claims each few new deliveries: through SQLAlchemy this query was
    half of such a claim's time."""
    raw = bare_sqlite(conn)
    if raw is None:
        return [tuple(row) for row in conn.execute(_CANDIDATES)]
    rows: list[tuple[str, int, int | None]] = raw.execute(
        "SELECT c.id, c.version, h.paused_until FROM configurations c LEFT JOIN"
        ' configuration_health h ON h.configuration_id = c.id WHERE c."on" = 1 ORDER BY c.id'
    ).fetchall()
    return rows


def _due_ids(
    conn: Connection, configuration_id: str, now: int, limit: int, *, skip: int = 0
) -> list[int]:
    """The ids of a configuration's oldest due deliveries (rows another claim holds skipped)."""
    raw = bare_sqlite(conn)
    if raw is None:
        return list(conn.execute(_due(configuration_id, now, limit, skip=skip)).scalars())
    rows = raw.execute(
        "SELECT id FROM deliveries WHERE configuration_id = ? AND state = 'pending'"
        " AND available_at <= ? ORDER BY available_at, id LIMIT ? OFFSET ?",
        (configuration_id, now, limit, skip),
    )
    return [row[0] for row in rows]


# The claim's and the record's statements over id lists, for `rows_in`.
_ENTRY_SIZES_SQLITE = (
    "SELECT d.id, length(CAST(e.payload AS BLOB)) FROM deliveries d"
    " JOIN events e ON e.id = d.event_id WHERE d.id IN ({marks})"
)
_LEASE_SQLITE = (
    "UPDATE deliveries SET lease_owner = ?, available_at = ?, attempts = attempts + 1"
    " WHERE id IN ({marks}) RETURNING id, event_id, configuration_id, attempts"
)
# A retry: due again at its time (or at once, uncharged, when held), if still this owner's.
_RETRY_SQLITE = (
    "UPDATE deliveries SET available_at = ?, lease_owner = NULL, attempts = attempts - ?"
    " WHERE id = ? AND state = 'pending' AND lease_owner = ?"
)
# Lease renewals, every few seconds for whatever a worker holds (with a backlog, a thousand
# rows: 3.6 ms through SQLAlchemy, on the loop every other configuration waits on), and
# releases.
_RENEW_SQLITE = (
    "UPDATE deliveries SET available_at = ?"
    " WHERE lease_owner = ? AND state = 'pending' AND id IN ({marks}) RETURNING id"
)
_RELEASE_SQLITE = (
    "UPDATE deliveries SET available_at = ?, lease_owner = NULL, attempts = attempts - 1"
    " WHERE lease_owner = ? AND state = 'pending' AND id IN ({marks})"
)
_FINISH_SQLITE = (
    "UPDATE deliveries SET state = ?, lease_owner = NULL, completed_at = ?"
    " WHERE id IN ({marks}) AND state = 'pending' RETURNING id"
)
_PAYLOADS_SQLITE = "SELECT id, payload FROM events WHERE id IN ({marks})"


def _entry_sizes(conn: Connection, delivery_ids: list[int]) -> dict[int, int]:
    """The size in bytes of each delivery's entry as stored."""
    raw = bare_sqlite(conn)
    if raw is None:
        statement = (
            select(deliveries.c.id, func.octet_length(func.cast(events.c.payload, Text)))
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.id.in_(delivery_ids))
        )
        return {id_: int(size or 0) for id_, size in conn.execute(statement)}
    return dict(rows_in(raw, _ENTRY_SIZES_SQLITE, delivery_ids))


def _lease(
    conn: Connection, ids: list[int], *, owner: str, until: int
) -> list[tuple[int, str, str, int]]:
    """Lease these deliveries to `owner` until `until`, counting the attempt; returns
    (id, event id, configuration id, attempt) of each."""
    raw = bare_sqlite(conn)
    if raw is None:
        statement = (
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .values(lease_owner=owner, available_at=until, attempts=deliveries.c.attempts + 1)
            .returning(
                deliveries.c.id,
                deliveries.c.event_id,
                deliveries.c.configuration_id,
                deliveries.c.attempts,
            )
        )
        return [tuple(row) for row in conn.execute(statement)]
    return rows_in(raw, _LEASE_SQLITE, ids, before=(owner, until))


def _finish_pending(conn: Connection, ids: list[int], state: DeliveryState, at: int) -> list[int]:
    """Finish those of these deliveries that are still pending as `state`; their ids."""
    raw = bare_sqlite(conn)
    if raw is None:
        statement = (
            update(deliveries)
            .where(deliveries.c.id.in_(ids), deliveries.c.state == DeliveryState.PENDING.value)
            .values(state=state.value, lease_owner=None, completed_at=at)
            .returning(deliveries.c.id)
        )
        return list(conn.execute(statement).scalars())
    return [row[0] for row in rows_in(raw, _FINISH_SQLITE, ids, before=(state.value, at))]


def _payloads(conn: Connection, event_ids: set[str]) -> dict[str, Mapping[str, Any]]:
    raw = bare_sqlite(conn)
    if raw is None:
        # Rows are unpacked as tuples: attribute access on rows shows in profiles here.
        found = conn.execute(
            select(events.c.id, events.c.payload).where(events.c.id.in_(event_ids))
        )
        return dict(tuple(row) for row in found)
    return {
        event_id: StoredEntry(event_id, payload.encode())
        for event_id, payload in rows_in(raw, _PAYLOADS_SQLITE, list(event_ids))
    }


def _counted(r: Result) -> Counted:
    return Counted(
        r.configuration_id,
        r.event_id,
        r.attempt,
        r.at,
        failure=r.failure,
        will_retry=r.state is DeliveryState.PENDING,
        duration_ms=r.duration_ms,
    )


def _logged(r: Result) -> AttemptRow:
    assert r.trace is not None
    failure = r.failure
    return AttemptRow(
        configuration_id=r.configuration_id,
        event_id=r.event_id,
        attempt=r.attempt,
        at=r.at,
        outcome=SUCCESS if failure is None else FAILURE,
        status_code=r.trace.status_code if failure is None else failure.status_code,
        duration_ms=r.duration_ms or 0,
        will_retry=r.state is DeliveryState.PENDING,
        next_at=r.next_at if r.state is DeliveryState.PENDING else None,
        error=None if failure is None else failure.error,
        hint=None if failure is None else failure.hint,
        detail=r.trace.detail,
    )
