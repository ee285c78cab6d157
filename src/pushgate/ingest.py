"""Ingest: validate events, match them against every configuration that is on, enqueue.

    POST ─► parse_batch (the request's own 400s) ─► Ingestor.submit ─► one transaction for
    every request waiting (group commit): match (policies parsed once per configuration
    version), events + deliveries ─► each request answered once its events are committed

Group commit: while one transaction commits, the requests that arrive wait, and the next
transaction takes all of them, up to `MAX_EVENTS_PER_COMMIT` events. A request alone commits
at once (no timer), so a quiet server adds no latency; a busy one shares SQLite's one writer
among many requests instead of making each wait for the write lock. A failed commit fails every
request it carried, and none of them is answered 202.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pushgate.clock import Clock
from pushgate.events import accesses_of, parse_batch
from pushgate.limits import DEFAULT_EVENT_SIZE_LIMIT
from pushgate.logs import Outage
from pushgate.policy import Statement, is_allowed, parse_statements
from pushgate.store import ConfigurationsChanged, NewEvent, Store

# A commit takes the waiting requests until it holds at least this many events.
MAX_EVENTS_PER_COMMIT = 1000
# Configurations changing between a match and its commit, this many times in a row, fail it.
MATCH_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Ids of the events in the request, and which of them were new."""

    ids: list[str]
    accepted: list[str]
    deliveries: int


@dataclass
class _Request:
    entries: list[dict[str, Any]]
    answer: asyncio.Future[IngestResult]
    events: list[NewEvent] = field(default_factory=list)


class Policies:
    """The statements of every configuration that is on, each parsed once per version.

    They are read again only when a commit finds that configurations changed (the commit
    checks the versions in its own transaction), so an unchanged install costs no query.
    """

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[int, list[Statement]]] = {}
        self._fresh = False

    @property
    def versions(self) -> dict[str, int]:
        """The version of each configuration the statements are of."""
        return {cid: version for cid, (version, _) in self._parsed.items()}

    def outdated(self) -> None:
        """Configurations changed: read them again before the next match."""
        self._fresh = False

    async def current(self, store: Store) -> list[tuple[str, list[Statement]]]:
        """(configuration id, statements) of each configuration that is on."""
        if not self._fresh:
            enabled = await store.configurations.enabled(self.versions)
            for cid, raw in enabled.statements.items():
                self._parsed[cid] = (enabled.versions[cid], parse_statements(raw))
            for gone in set(self._parsed) - set(enabled.versions):
                del self._parsed[gone]
            self._fresh = True
        return [(cid, statements) for cid, (_, statements) in self._parsed.items()]


class Ingestor:
    """Commits the events of concurrent requests together (see the module's docstring)."""

    def __init__(self, store: Store, clock: Clock, *, outage: Outage | None = None) -> None:
        self._store = store
        self._clock = clock
        # A commit that went through proves the database is back (no ping needed).
        self._outage = outage or Outage()
        self._policies = Policies()
        self._waiting: collections.deque[_Request] = collections.deque()
        self._committing: asyncio.Task[None] | None = None

    async def ingest(
        self, body: object, *, now: int, max_event_bytes: int = DEFAULT_EVENT_SIZE_LIMIT
    ) -> IngestResult:
        """Validate a single entry or a batch, and commit events with their deliveries.

        The whole request is checked before anything is written: one bad entry (or one larger
        than `max_event_bytes` as JSON) rejects the request with a 400 that names it, and
        nothing of it is stored.
        """
        entries = parse_batch(body, now_ms=now, max_bytes=max_event_bytes)
        request = _Request(entries, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        if self._committing is None:
            self._committing = asyncio.create_task(self._commit_while_waiting())
        return await request.answer

    async def _commit_while_waiting(self) -> None:
        try:
            while self._waiting:
                taken, events = [], 0
                while self._waiting and events < MAX_EVENTS_PER_COMMIT:
                    request = self._waiting.popleft()
                    taken.append(request)
                    events += len(request.entries)
                await self._commit(taken)
        finally:
            self._committing = None

    async def _commit(self, requests: Sequence[_Request]) -> None:
        try:
            for _ in range(MATCH_ATTEMPTS):
                policies = await self._policies.current(self._store)
                events = self._match(requests, policies)
                try:
                    accepted = set(
                        await self._store.deliveries.enqueue(
                            events, now=self._clock(), matched=self._policies.versions
                        )
                    )
                    break
                except ConfigurationsChanged:
                    self._policies.outdated()
            else:
                raise ConfigurationsChanged()
        except Exception as error:  # every request of this commit fails the same way
            for request in requests:
                if not request.answer.done():
                    request.answer.set_exception(error)
            return
        self._outage.succeeded()
        for request in requests:
            new = [e for e in request.events if e.id in accepted]
            if not request.answer.done():  # a client that went away is not answered
                request.answer.set_result(
                    IngestResult(
                        ids=[entry["_id"] for entry in request.entries],
                        accepted=[e.id for e in new],
                        deliveries=sum(len(e.configuration_ids) for e in new),
                    )
                )

    @staticmethod
    def _match(
        requests: Sequence[_Request], policies: list[tuple[str, list[Statement]]]
    ) -> list[NewEvent]:
        """Each request's new events with the configurations they go to (an id that an
        earlier request of the same commit has counts for that one only)."""
        seen: set[str] = set()
        events = []
        for request in requests:
            request.events = []
            for entry in request.entries:
                if entry["_id"] in seen:
                    continue
                seen.add(entry["_id"])
                accesses = accesses_of(entry)
                targets = [cid for cid, rules in policies if is_allowed(rules, accesses)]
                request.events.append(
                    NewEvent(entry["_id"], entry["date"], entry["kind"], entry, targets)
                )
            events.extend(request.events)
        return events


async def ingest(
    store: Store,
    body: object,
    *,
    now: int,
    max_event_bytes: int = DEFAULT_EVENT_SIZE_LIMIT,
) -> IngestResult:
    """One request's events committed on their own (tests, benchmarks, one-off loads)."""
    return await Ingestor(store, lambda: now).ingest(body, now=now, max_event_bytes=max_event_bytes)
