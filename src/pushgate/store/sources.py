"""Event sources: their sealed secrets, and what each has received."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.domain import SourceKind
from pushgate.errors import NotFound
from pushgate.limits import STORED_ID
from pushgate.store.configurations import new_id
from pushgate.store.database import reading
from pushgate.store.tables import sources


@dataclass(frozen=True, slots=True)
class SourceRow:
    """A stored source; `secret` is sealed (sealing.py). The counters are what it received:
    new events (repeats of an `_id` not counted) and the last signed request."""

    id: str
    name: str
    kind: SourceKind
    secret: str
    created_at: int
    events_received: int = 0
    last_event_at: int | None = None
    last_event_id: str | None = None


def _row(row: Row[Any]) -> SourceRow:
    return SourceRow(
        id=row.id,
        name=row.name,
        kind=SourceKind(row.kind),
        secret=row.secret,
        created_at=row.created_at,
        events_received=row.events_received,
        last_event_at=row.last_event_at,
        last_event_id=row.last_event_id,
    )


def _not_found(source_id: str) -> NotFound:
    return NotFound(f"no source with id {source_id!r}")


class SourceStore:
    """Create, find, list and delete sources; count what they receive."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, *, name: str, kind: SourceKind, secret: str, now: int) -> SourceRow:
        """Store a new source (its secret already sealed) and return it."""
        row = SourceRow(id=new_id(), name=name, kind=kind, secret=secret, created_at=now)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(sources).values(
                    id=row.id,
                    name=name,
                    kind=kind.value,
                    secret=secret,
                    created_at=now,
                    events_received=0,
                )
            )
        return row

    async def get(self, source_id: str) -> SourceRow:
        """The source with this id; NotFound (without a query for an impossible id)."""
        if not STORED_ID.fullmatch(source_id):
            raise _not_found(source_id)
        async with reading(self._engine) as conn:
            found = (await conn.execute(select(sources).where(sources.c.id == source_id))).first()
        if found is None:
            raise _not_found(source_id)
        return _row(found)

    async def all(self) -> list[SourceRow]:
        """Every source, oldest first."""
        query = select(sources).order_by(sources.c.created_at, sources.c.id)
        async with reading(self._engine) as conn:
            return [_row(row) for row in (await conn.execute(query)).all()]

    async def delete(self, source_id: str) -> None:
        """Delete a source; what it brought in stays. NotFound when there is none."""
        if not STORED_ID.fullmatch(source_id):
            raise _not_found(source_id)
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(sources).where(sources.c.id == source_id))
        if result.rowcount != 1:
            raise _not_found(source_id)

    async def received(
        self, source_id: str, *, events: int, last_event_id: str | None, now: int
    ) -> None:
        """Count a signed request that was ingested: `events` new events, the last `_id`.

        Its own small transaction after the events were committed: a process that dies in
        between misses one count, never an event. A source deleted meanwhile counts nothing.
        """
        async with self._engine.begin() as conn:
            await conn.execute(
                update(sources)
                .where(sources.c.id == source_id)
                .values(
                    events_received=sources.c.events_received + events,
                    last_event_at=now,
                    last_event_id=last_event_id,
                )
            )
