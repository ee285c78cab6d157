"""Ingest: validate events, match them against every configuration that is on, enqueue."""

from __future__ import annotations

from dataclasses import dataclass

from pushgate.events import accesses_of, parse_batch
from pushgate.limits import DEFAULT_EVENT_SIZE_LIMIT
from pushgate.policy import is_allowed, parse_statements
from pushgate.store import NewEvent, Store


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Ids of the events in the request, and which of them were new."""

    ids: list[str]
    accepted: list[str]
    deliveries: int


async def ingest(
    store: Store, body: object, *, now: int, max_event_bytes: int = DEFAULT_EVENT_SIZE_LIMIT
) -> IngestResult:
    """Validate a single entry or a batch, and commit events with their deliveries.

    The whole request is checked before anything is written: one bad entry (or one larger than
    `max_event_bytes` as JSON) rejects the request with a 400 that names it, and nothing of it
    is stored.
    """
    entries = parse_batch(body, now_ms=now, max_bytes=max_event_bytes)
    enabled = [
        (row.id, parse_statements(row.statements))
        for row in await store.configurations.list_enabled()
    ]
    batch = []
    for entry in entries:
        accesses = accesses_of(entry)
        targets = [cid for cid, statements in enabled if is_allowed(statements, accesses)]
        batch.append(NewEvent(entry["_id"], entry["date"], entry["kind"], entry, targets))
    accepted = set(await store.deliveries.enqueue(batch, now=now))
    return IngestResult(
        ids=[e.id for e in batch],
        accepted=[e.id for e in batch if e.id in accepted],
        deliveries=sum(len(e.configuration_ids) for e in batch if e.id in accepted),
    )
