"""Activity over time: per configuration and hour, successes, errors and a latency histogram.

    activity_hours   (configuration_id, hour, shard) → successes, errors, lat_0 … lat_N

Added to by the status writer in the record transaction, from the same counted outcomes as the
status counters (so the chart's sums equal the counters for the hours it shows), one upsert
per (configuration, hour) of a batch; never computed by scanning attempts. `hour` is the start
of the UTC hour, in Unix ms. Latency quantiles (p50, p95) are read off the fixed histogram:
each is the upper bound of the bucket that holds it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pushgate.store.database import dialect_insert
from pushgate.store.tables import LATENCY_BOUNDS_MS, activity_hours

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
LATENCY_COLUMNS = tuple(f"lat_{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1))
_COUNTED = ("successes", "errors", *LATENCY_COLUMNS)
_UPSERT_SQLITE = f"""
INSERT INTO activity_hours (configuration_id, hour, shard, {", ".join(_COUNTED)})
VALUES (?, ?, ?, {", ".join("?" * len(_COUNTED))})
ON CONFLICT (configuration_id, hour, shard) DO UPDATE SET
    {", ".join(f"{c} = {c} + excluded.{c}" for c in _COUNTED)}
"""  # noqa: S608 - column names are constants


def bucket_of(duration_ms: int) -> int:
    """The histogram bucket of a duration: the first bound it does not exceed (last: above)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, duration_ms)


def add_hours(
    conn: Connection, shard: int, counted: Sequence[tuple[str, int, bool, int | None]]
) -> None:
    """Add outcomes — (configuration, at, ok, duration ms or None) — to their hours."""
    totals: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0] * len(_COUNTED))
    for cid, at, ok, duration in counted:
        row = totals[(cid, at - at % HOUR_MS)]
        row[0 if ok else 1] += 1
        if duration is not None:
            row[2 + bucket_of(duration)] += 1
    if not totals:
        return
    keys = sorted(totals)
    if conn.dialect.name == "sqlite":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.executemany(
            _UPSERT_SQLITE, [(cid, hour, shard, *totals[(cid, hour)]) for cid, hour in keys]
        )
        return
    upsert = dialect_insert(conn.dialect.name, activity_hours)
    current, new = activity_hours.c, upsert.excluded
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[current.configuration_id, current.hour, current.shard],
            set_={c: current[c] + new[c] for c in _COUNTED},
        ),
        [
            {
                "configuration_id": cid,
                "hour": hour,
                "shard": shard,
                **dict(zip(_COUNTED, totals[(cid, hour)], strict=True)),
            }
            for cid, hour in keys
        ],
    )


@dataclass(frozen=True, slots=True)
class Interval:
    """One bar of the chart: its start (Unix ms), counts and latency quantiles (None: none)."""

    start: int
    successes: int = 0
    errors: int = 0
    histogram: tuple[int, ...] = field(default=(0,) * len(LATENCY_COLUMNS))

    def quantile(self, share: float) -> int | None:
        """The upper bound (ms) of the bucket holding this share of the attempts; None when
        nothing was timed; the last bucket's is the largest bound."""
        total = sum(self.histogram)
        if not total:
            return None
        wanted, seen = share * total, 0
        for index, count in enumerate(self.histogram):
            seen += count
            if seen >= wanted:
                return LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)]
        return LATENCY_BOUNDS_MS[-1]

    @property
    def p50(self) -> int | None:
        return self.quantile(0.50)

    @property
    def p95(self) -> int | None:
        return self.quantile(0.95)


async def read_intervals(
    conn: AsyncConnection, configuration_id: str, *, now: int, size_ms: int, count: int
) -> list[Interval]:
    """The last `count` intervals of `size_ms` (an hour or a day) up to `now`, oldest first."""
    end = now - now % HOUR_MS + HOUR_MS
    start = end - size_ms * count
    c = activity_hours.c
    rows = (
        await conn.execute(
            select(c.hour, *(func.sum(c[name]).label(name) for name in _COUNTED))
            .where(c.configuration_id == configuration_id, c.hour >= start, c.hour < end)
            .group_by(c.hour)
        )
    ).all()
    sums: dict[int, list[int]] = defaultdict(lambda: [0] * len(_COUNTED))
    for row in rows:
        index = (row.hour - start) // size_ms
        for position, name in enumerate(_COUNTED):
            sums[index][position] += int(getattr(row, name))
    return [
        Interval(start + i * size_ms, sums[i][0], sums[i][1], tuple(sums[i][2:]))
        for i in range(count)
    ]


def combined(intervals: Sequence[Interval]) -> Interval:
    """These intervals as one (from the first's start): counts and histograms added."""
    histograms = [i.histogram for i in intervals] or [(0,) * len(LATENCY_COLUMNS)]
    return Interval(
        intervals[0].start if intervals else 0,
        sum(i.successes for i in intervals),
        sum(i.errors for i in intervals),
        tuple(sum(column) for column in zip(*histograms, strict=True)),
    )
