"""The attempt log: each configuration's most recent attempts, successes too, with detail.

Written inside the delivery store's `record` transaction (`AttemptWriter`), one executemany per
batch (SQLite's bare driver there, as the status counters do). Trimming is amortised: a
configuration is trimmed to `size` on its first write in a process and then each time this
process has written a tenth of `size` more of its attempts, by one delete below an id
threshold, so between trims a configuration holds at most `size + size // 10` attempts (per
recording process). Read by the API and the Activity page (`read_attempts`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pushgate.store.tables import attempts

SUCCESS = "success"
FAILURE = "failure"
OUTCOMES = (SUCCESS, FAILURE)
# Every how many of its attempts (as a share of the bound) a configuration is trimmed.
TRIM_SHARE = 10

_COLUMNS = (
    "configuration_id",
    "event_id",
    "attempt",
    "at",
    "outcome",
    "status_code",
    "duration_ms",
    "will_retry",
    "next_at",
    "error",
    "hint",
    "detail",
)
_INSERT_SQLITE = """
INSERT INTO attempts (configuration_id, event_id, attempt, at, outcome, status_code,
    duration_ms, will_retry, next_at, error, hint, detail)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


@dataclass(frozen=True, slots=True)
class Trace:
    """What the attempt log keeps of an attempt beyond its outcome and duration: the status
    code that came back (None: no answer) and the request and response (JSON, masked)."""

    status_code: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One attempt of the log: as the delivery store hands it over (no `id` yet) and as read
    back (`detail`, the request and response as masked JSON, only when asked for)."""

    configuration_id: str
    event_id: str
    attempt: int
    at: int
    outcome: str
    status_code: int | None
    duration_ms: int
    will_retry: bool
    next_at: int | None
    error: str | None
    hint: str | None
    detail: str | None
    id: int = 0

    def exchange(self) -> dict[str, Any]:
        """The request and response kept with this attempt (empty: none, or not read)."""
        found: dict[str, Any] = json.loads(self.detail) if self.detail else {}
        return found


@dataclass(frozen=True, slots=True)
class AttemptFilter:
    """Which attempts to read: all filters optional, times in Unix ms (inclusive)."""

    outcome: str | None = None
    status_code: int | None = None
    event_id: str | None = None
    since: int | None = None
    until: int | None = None


class AttemptWriter:
    """Appends attempts and trims each configuration's log now and then."""

    def __init__(self, *, dialect: str, size: int) -> None:
        self._dialect = dialect
        self._size = size
        self._interval = max(1, size // TRIM_SHARE)
        self._since_trim: Counter[str] = Counter()

    def write(self, conn: Connection, rows: Sequence[AttemptRow]) -> None:
        """Add these attempts (of configurations that exist), then trim those that are due."""
        if not rows:
            return
        if self._dialect == "sqlite":
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.executemany(_INSERT_SQLITE, [tuple(getattr(r, c) for c in _COLUMNS) for r in rows])
        else:
            conn.execute(attempts.insert(), [{c: getattr(r, c) for c in _COLUMNS} for r in rows])
        due: list[str] = []
        for row in rows:
            cid = row.configuration_id
            if cid not in self._since_trim:
                due.append(cid)  # first write here: trim what other runs left
                self._since_trim[cid] = 0
            self._since_trim[cid] += 1
            if self._since_trim[cid] >= self._interval:
                due.append(cid)
        for cid in sorted(set(due)):
            self._since_trim[cid] = 0
            self._trim(conn, cid)

    def _trim(self, conn: Connection, configuration_id: str) -> None:
        newest_dropped = (
            select(attempts.c.id)
            .where(attempts.c.configuration_id == configuration_id)
            .order_by(attempts.c.id.desc())
            .limit(1)
            .offset(self._size)
            .scalar_subquery()
        )
        conn.execute(
            delete(attempts).where(
                attempts.c.configuration_id == configuration_id,
                attempts.c.id <= newest_dropped,
            )
        )


def _entry(row: Row[Any]) -> AttemptRow:
    values: dict[str, Any] = {c: getattr(row, c, None) for c in _COLUMNS}
    return AttemptRow(**values, id=row.id)


async def read_attempts(
    conn: AsyncConnection,
    configuration_id: str,
    wanted: AttemptFilter,
    *,
    limit: int,
    before: int | None = None,
    detail: bool = False,
) -> list[AttemptRow]:
    """A page of the attempt log, newest first; `before` is the last id of the previous page."""
    c = attempts.c
    columns = [col for col in attempts.columns if detail or col.name != "detail"]
    query = (
        select(*columns)
        .where(c.configuration_id == configuration_id)
        .order_by(c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(c.id < before)
    if wanted.outcome is not None:
        query = query.where(c.outcome == wanted.outcome)
    if wanted.status_code is not None:
        query = query.where(c.status_code == wanted.status_code)
    if wanted.event_id is not None:
        query = query.where(c.event_id == wanted.event_id)
    if wanted.since is not None:
        query = query.where(c.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(c.at <= wanted.until)
    return [_entry(row) for row in (await conn.execute(query)).all()]
