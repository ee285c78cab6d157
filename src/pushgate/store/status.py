"""What the status table shows of each configuration, read and written in one place.

    configuration_status  counters and timestamps, in shards (summed on read)
    error_log             the most recent failed attempts, trimmed to `error_log_size`
    configuration_health  the breaker (breaker.py): failing, paused, turned off by a 410

Writes happen inside the delivery store's `record` transaction (`StatusWriter`); reads serve
the configuration store's answers (`read_statuses`, `read_health`).

Lock order of a recording transaction, after the delivery rows it holds: the configurations
whose error log or breaker it writes (by id, `FOR NO KEY UPDATE`), then their breaker rows (by
id), then its own status shard rows (by configuration id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from pushgate.breaker import Breaker
from pushgate.domain import DeliveryState
from pushgate.store.database import bare_sqlite, dialect_insert, rows_in
from pushgate.store.rollup import add_hours
from pushgate.store.tables import (
    configuration_health,
    configuration_status,
    configurations,
    deliveries,
    error_log,
)
from pushgate.values import value_class


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """One failed attempt, as the error log shows it."""

    id: int
    event_id: str
    attempt: int
    timestamp: int
    status_code: int | None
    response_body: str | None
    error: str | None
    hint: str | None
    will_retry: bool


@dataclass(frozen=True, slots=True)
class Status:
    """Counters and timestamps of one configuration (sums over shards)."""

    success_count: int = 0
    error_count: int = 0
    last_success: int | None = None
    last_error: int | None = None
    errors: tuple[ErrorEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Health:
    """A configuration's breaker and how many of its deliveries are pending (waiting, held
    or in flight)."""

    breaker: Breaker = field(default_factory=Breaker)
    pending: int = 0


@value_class
class Counted:
    """One attempt's contribution to the status: which configuration, when, and, for a
    failure, the error-log entry."""

    configuration_id: str
    event_id: str
    attempt: int
    at: int
    failure: Any = None  # deliveries.Failure; typed loosely to keep this module below it
    will_retry: bool = False
    duration_ms: int | None = None  # None: no attempt was timed


# The counters' upsert on SQLite's bare driver (it runs on every recording transaction).
_COUNT_SQLITE = """
INSERT INTO configuration_status
    (configuration_id, shard, success_count, error_count, last_success, last_error)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (configuration_id, shard) DO UPDATE SET
    success_count = success_count + excluded.success_count,
    error_count = error_count + excluded.error_count,
    last_success = CASE
        WHEN excluded.last_success IS NULL THEN last_success
        WHEN last_success IS NULL OR excluded.last_success > last_success
            THEN excluded.last_success
        ELSE last_success END,
    last_error = CASE
        WHEN excluded.last_error IS NULL THEN last_error
        WHEN last_error IS NULL OR excluded.last_error > last_error THEN excluded.last_error
        ELSE last_error END
"""


def _error(row: Row[Any]) -> ErrorEntry:
    return ErrorEntry(
        id=row.id,
        event_id=row.event_id,
        attempt=row.attempt,
        timestamp=row.timestamp,
        status_code=row.status_code,
        response_body=row.response_body,
        error=row.error,
        hint=row.hint,
        will_retry=row.will_retry,
    )


def breaker_of(row: Row[Any]) -> Breaker:
    """The breaker a `configuration_health` row holds."""
    return Breaker(
        failures=row.failures,
        opened=row.opened,
        paused_until=row.paused_until,
        reason=row.reason,
        since=row.since,
        off=row.off,
    )


def _values(breaker: Breaker) -> dict[str, Any]:
    return {
        "failures": breaker.failures,
        "opened": breaker.opened,
        "paused_until": breaker.paused_until,
        "reason": breaker.reason,
        "since": breaker.since,
        "off": breaker.off,
    }


def save_breaker(conn: Connection, configuration_id: str, breaker: Breaker) -> None:
    """Write a configuration's breaker (insert or replace)."""
    raw = bare_sqlite(conn)
    if raw is not None:
        raw.execute(
            _SAVE_BREAKER_SQLITE,
            (configuration_id, breaker.failures, breaker.opened, breaker.paused_until,
             breaker.reason, breaker.since, breaker.off),
        )  # fmt: skip
        return
    upsert = dialect_insert(conn.dialect.name, configuration_health).values(
        configuration_id=configuration_id, **_values(breaker)
    )
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[configuration_health.c.configuration_id], set_=_values(breaker)
        )
    )


# SQLite: a configuration's breaker and whether a configuration exists, on the bare driver
# (asked by every record; SQLAlchemy's work per query cost more than SQLite's).
_BREAKERS_SQLITE = (
    "SELECT configuration_id, failures, opened, paused_until, reason, since, off"
    " FROM configuration_health WHERE configuration_id IN ({marks}) ORDER BY configuration_id"
)
_EXISTING_SQLITE = "SELECT id FROM configurations WHERE id IN ({marks})"
# SQLite: what a record writes when attempts fail, on the bare driver too. A receiver that is
# down makes every attempt a failure: with these statements through SQLAlchemy, recording
# sixteen timeouts at once took 2.4 ms (0.6 ms here), while every other configuration waited.
_SAVE_BREAKER_SQLITE = (
    "INSERT INTO configuration_health"
    " (configuration_id, failures, opened, paused_until, reason, since, off)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (configuration_id) DO UPDATE SET"
    " failures = excluded.failures, opened = excluded.opened,"
    " paused_until = excluded.paused_until, reason = excluded.reason,"
    " since = excluded.since, off = excluded.off"
)
_ERROR_LOG_COLUMNS = (
    "configuration_id", "event_id", "attempt", "timestamp", "status_code", "response_body",
    "error", "hint", "will_retry",
)  # fmt: skip
_ERROR_LOG_SQLITE = (
    f"INSERT INTO error_log ({', '.join(_ERROR_LOG_COLUMNS)})"  # noqa: S608 - column names only
    f" VALUES ({', '.join('?' * len(_ERROR_LOG_COLUMNS))})"
)
_TRIM_ERROR_LOG_SQLITE = (
    "DELETE FROM error_log WHERE configuration_id = ? AND id < (SELECT id FROM error_log"
    " WHERE configuration_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
)


def load_breakers(conn: Connection, ids: Iterable[str], *, lock: bool) -> dict[str, Breaker]:
    """The stored breakers of these configurations (absent: healthy, no row)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    raw = bare_sqlite(conn)  # SQLite has nothing to lock: the transaction holds the database
    if raw is not None:
        return {
            cid: Breaker(
                failures=failures,
                opened=opened,
                paused_until=paused_until,
                reason=reason,
                since=since,
                off=bool(off),
            )
            for cid, failures, opened, paused_until, reason, since, off in rows_in(
                raw, _BREAKERS_SQLITE, wanted
            )
        }
    query = (
        select(configuration_health)
        .where(configuration_health.c.configuration_id.in_(wanted))
        .order_by(configuration_health.c.configuration_id)
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {row.configuration_id: breaker_of(row) for row in conn.execute(query)}


class StatusWriter:
    """Adds outcomes to the counters, the error log and the breakers, inside `record`.

    `shard` is the `configuration_status` row this process adds to.
    """

    def __init__(self, *, dialect: str, shard: int, error_log_size: int) -> None:
        self._dialect = dialect
        self._shard = shard
        self._error_log_size = error_log_size

    def lock(self, conn: Connection, configuration_ids: Iterable[str]) -> set[str]:
        """Lock these configurations (PostgreSQL) in id order; returns those that exist.

        One writer at a time per configuration's error log and breaker, so that each trim
        sees every committed entry and each breaker decision sees the last. NO KEY UPDATE:
        foreign-key checks (ingest inserting deliveries) do not wait for it.
        """
        if bare_sqlite(conn) is not None:  # nothing to lock: the transaction holds SQLite
            return self.existing(conn, configuration_ids)
        wanted = sorted(set(configuration_ids))
        if not wanted:
            return set()
        query = (
            select(configurations.c.id)
            .where(configurations.c.id.in_(wanted))
            .order_by(configurations.c.id)
            .with_for_update(key_share=True)
        )
        return set(conn.execute(query).scalars())

    def existing(self, conn: Connection, configuration_ids: Iterable[str]) -> set[str]:
        """Which of these configurations still exist (no lock)."""
        wanted = sorted(set(configuration_ids))
        if not wanted:
            return set()
        raw = bare_sqlite(conn)
        if raw is not None:
            return {row[0] for row in rows_in(raw, _EXISTING_SQLITE, wanted)}
        query = select(configurations.c.id).where(configurations.c.id.in_(wanted))
        return set(conn.execute(query).scalars())

    def count(
        self, conn: Connection, successes: Sequence[Counted], failures: Sequence[Counted]
    ) -> None:
        """Add to the counters of this process's shard and to the error log (then trim it).

        Only configurations that still exist are counted (one may be deleted meanwhile).
        """
        totals: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"success_count": 0, "error_count": 0, "last_success": None, "last_error": None}
        )
        for c in successes:
            total = totals[c.configuration_id]
            total["success_count"] += 1
            total["last_success"] = max(total["last_success"] or 0, c.at)
        for c in failures:
            total = totals[c.configuration_id]
            total["error_count"] += 1
            total["last_error"] = max(total["last_error"] or 0, c.at)
        if not totals:
            return
        rows = [
            {"configuration_id": cid, "shard": self._shard, **total}
            for cid, total in sorted(totals.items())
        ]
        if self._dialect == "sqlite":
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.executemany(
                _COUNT_SQLITE,
                [
                    (r["configuration_id"], r["shard"], r["success_count"], r["error_count"],
                     r["last_success"], r["last_error"])
                    for r in rows
                ],
            )  # fmt: skip
        else:
            self._count_rows(conn, rows)
        add_hours(
            conn,
            self._shard,
            [(c.configuration_id, c.at, True, c.duration_ms) for c in successes]
            + [(c.configuration_id, c.at, False, c.duration_ms) for c in failures],
        )
        if failures:
            self._log_errors(conn, failures)
            self._trim_error_log(conn, {c.configuration_id for c in failures})

    def _count_rows(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        upsert = dialect_insert(self._dialect, configuration_status)
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

    @staticmethod
    def _log_errors(conn: Connection, failures: Sequence[Counted]) -> None:
        entries = [
            (c.configuration_id, c.event_id, c.attempt, c.at, c.failure.status_code,
             c.failure.response_body, c.failure.error, c.failure.hint, c.will_retry)
            for c in failures
        ]  # fmt: skip
        raw = bare_sqlite(conn)
        if raw is not None:
            raw.executemany(_ERROR_LOG_SQLITE, entries)
            return
        rows = [dict(zip(_ERROR_LOG_COLUMNS, entry, strict=True)) for entry in entries]
        conn.execute(error_log.insert(), rows)

    def _trim_error_log(self, conn: Connection, configuration_ids: set[str]) -> None:
        raw = bare_sqlite(conn)
        for configuration_id in sorted(configuration_ids):
            if raw is not None:
                keep = (configuration_id, configuration_id, self._error_log_size - 1)
                raw.execute(_TRIM_ERROR_LOG_SQLITE, keep)
                continue
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

    def turn_off(self, conn: Connection, configuration_ids: Iterable[str], *, now: int) -> None:
        """Turn configurations off for the receiver (a 410): clients and workers see it."""
        wanted = sorted(set(configuration_ids))
        if wanted:
            conn.execute(
                update(configurations)
                .where(configurations.c.id.in_(wanted))
                .values(on=False, version=configurations.c.version + 1, updated_at=now)
            )


async def read_statuses(
    conn: AsyncConnection, ids: Sequence[str], *, recent_errors: int
) -> dict[str, Status]:
    """Counters (summed over shards) and the `recent_errors` newest error-log entries."""
    if not ids:
        return {}
    totals = (
        await conn.execute(
            select(
                configuration_status.c.configuration_id,
                func.sum(configuration_status.c.success_count).label("success_count"),
                func.sum(configuration_status.c.error_count).label("error_count"),
                func.max(configuration_status.c.last_success).label("last_success"),
                func.max(configuration_status.c.last_error).label("last_error"),
            )
            .where(configuration_status.c.configuration_id.in_(ids))
            .group_by(configuration_status.c.configuration_id)
        )
    ).all()
    ranked = (
        select(
            error_log,
            func.row_number()
            .over(partition_by=error_log.c.configuration_id, order_by=error_log.c.id.desc())
            .label("rank"),
        )
        .where(error_log.c.configuration_id.in_(ids))
        .subquery()
    )
    recent = (
        await conn.execute(
            select(ranked)
            .where(ranked.c.rank <= recent_errors)
            .order_by(ranked.c.configuration_id, ranked.c.id.desc())
        )
    ).all()
    errors: dict[str, list[ErrorEntry]] = {}
    for row in recent:
        errors.setdefault(row.configuration_id, []).append(_error(row))
    return {
        row.configuration_id: Status(
            success_count=int(row.success_count),
            error_count=int(row.error_count),
            last_success=row.last_success,
            last_error=row.last_error,
            errors=tuple(errors.get(row.configuration_id, ())),
        )
        for row in totals
    }


async def read_health(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, Health]:
    """Breakers and pending counts of these configurations."""
    if not ids:
        return {}
    breakers = {
        row.configuration_id: breaker_of(row)
        for row in await conn.execute(
            select(configuration_health).where(configuration_health.c.configuration_id.in_(ids))
        )
    }
    pending: Mapping[str, int] = {
        row.configuration_id: int(row.pending)
        for row in await conn.execute(
            select(deliveries.c.configuration_id, func.count().label("pending"))
            .where(
                deliveries.c.configuration_id.in_(ids),
                deliveries.c.state == DeliveryState.PENDING.value,
            )
            .group_by(deliveries.c.configuration_id)
        )
    }
    return {
        cid: Health(breakers.get(cid, Breaker()), pending.get(cid, 0))
        for cid in {*breakers, *pending}
    }


async def read_errors(
    conn: AsyncConnection, configuration_id: str, *, limit: int, before: int | None
) -> list[ErrorEntry]:
    """The error log, newest first; `before` is the last id of the previous page."""
    query = (
        select(error_log)
        .where(error_log.c.configuration_id == configuration_id)
        .order_by(error_log.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(error_log.c.id < before)
    return [_error(row) for row in (await conn.execute(query)).all()]


def _latest(current: Any, new: Any) -> Any:
    """The later of two nullable timestamps, portable across SQLite and PostgreSQL."""
    return case(
        (new.is_(None), current),
        (current.is_(None), new),
        (new > current, new),
        else_=current,
    )
