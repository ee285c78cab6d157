"""The worker: claim due deliveries in batches, attempt them concurrently, record in batches.

    claim_due (lease) ─► attempt (N in flight) ─► outcomes buffer ─► record (one transaction)

A delivery stays leased, never removed, while in flight: a worker that dies leaves leases that
expire and are claimed again (at-least-once). On stop, the worker claims nothing more, lets
in-flight attempts finish within the grace period, records them and releases the rest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from pushgate.clock import Clock
from pushgate.configurations import Services, open_config
from pushgate.delivery.engine import Engine
from pushgate.errors import DeliveryError
from pushgate.integrations.base import Integration, IntegrationConfig
from pushgate.metrics import ATTEMPTS
from pushgate.retry import RetryAction, RetryPolicy
from pushgate.settings import Settings
from pushgate.store import Claimed, DeliveryState, Failure, Result

log = structlog.get_logger("pushgate.delivery")

# Record outcomes at least this often (seconds) while attempts keep finishing one by one.
FLUSH_INTERVAL = 0.05


@dataclass(frozen=True, slots=True)
class _Target:
    version: int
    on: bool
    integration: Integration[Any]
    config: IntegrationConfig


def default_owner() -> str:
    """A lease owner name that says which process holds a delivery."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Delivers due deliveries until stopped (`run`) or until none is due (`run_until_idle`)."""

    def __init__(
        self,
        services: Services,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        *,
        owner: str | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._services = services
        self._store = services.store
        self._engine = engine
        self._clock = clock
        self._owner = owner or default_owner()
        self._retry = RetryPolicy(settings.retry_schedule, settings.retry_jitter)
        self._rand = rand or random.random
        self._concurrency = settings.worker_concurrency
        self._batch = settings.claim_batch_size
        self._lease_ms = int(settings.lease_seconds * 1000)
        self._poll = settings.poll_interval
        self._grace = settings.shutdown_grace
        self._targets: dict[str, _Target] = {}
        self._ready: collections.deque[Claimed] = collections.deque()
        self._inflight: dict[asyncio.Task[None], Claimed] = {}
        self._outcomes: list[Result] = []
        self._wake = asyncio.Event()
        self._claiming: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._exhausted = False  # the last claim found less than a batch due
        self._claimed = 0
        # One database operation at a time per worker: SQLite has one writer anyway, and
        # waiting here is cheaper than SQLite's busy-retry sleeps.
        self._db = asyncio.Lock()

    def wake(self) -> None:
        """Tell the worker new deliveries may be due (called after events are enqueued)."""
        self._exhausted = False
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then shut down gracefully."""
        log.info("worker.started", owner=self._owner, concurrency=self._concurrency)
        try:
            while not stop.is_set():
                if not await self._turn():
                    await self._idle(stop)
        finally:
            await self._drain()
            log.info("worker.stopped", owner=self._owner)

    async def run_until_idle(self) -> int:
        """Deliver until nothing is due at the clock's current time; returns attempts made."""
        self._exhausted = False
        self._claimed = 0
        while await self._turn():
            pass
        return self._claimed

    async def _turn(self) -> bool:
        """Start what can start, then wait for something to finish.

        Claims and records run as tasks beside the HTTP attempts, so the database round trips
        do not stall sending. Returns False when nothing is due, in flight or unrecorded.
        """
        held = len(self._ready) + len(self._inflight)
        # Claim whole batches, and only when a whole batch fits: each claim is a transaction.
        if self._claiming is None and not self._exhausted and held <= self._concurrency:
            self._claiming = asyncio.create_task(self._claim())
        while self._ready and len(self._inflight) < self._concurrency:
            delivery = self._ready.popleft()
            self._inflight[asyncio.create_task(self._attempt(delivery))] = delivery
        if self._outcomes and (len(self._outcomes) >= self._batch or not self._inflight):
            self._start_flush()
        waiting = set(self._inflight)
        waiting.update(task for task in (self._claiming, self._flushing) if task is not None)
        if not waiting:
            return False
        done, _ = await asyncio.wait(
            waiting, timeout=FLUSH_INTERVAL, return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            if task is self._claiming:
                self._claiming = None
            elif task is self._flushing:
                self._flushing = None
            else:
                del self._inflight[task]
            task.result()
        if not done and self._outcomes:
            self._start_flush()  # attempts finish slowly: do not hold finished ones back
        return True

    async def _claim(self) -> None:
        async with self._db:
            claimed = await self._store.deliveries.claim_due(
                owner=self._owner, now=self._clock(), limit=self._batch, lease_ms=self._lease_ms
            )
            await self._load_targets(claimed)
        # A short batch means nothing more is due now; look again when woken or polled.
        self._exhausted = len(claimed) < self._batch
        self._claimed += len(claimed)
        self._ready.extend(claimed)

    def _start_flush(self) -> None:
        if self._flushing is None:
            outcomes, self._outcomes = self._outcomes, []
            self._flushing = asyncio.create_task(self._record(outcomes))

    async def _record(self, outcomes: list[Result]) -> None:
        async with self._db:
            await self._store.deliveries.record(outcomes)

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        self._exhausted = False

    async def _drain(self) -> None:
        """Let in-flight attempts finish within the grace period; release everything else."""
        for task in (self._claiming, self._flushing):
            if task is not None:
                await task
        self._claiming = self._flushing = None
        unfinished = [delivery.id for delivery in self._ready]
        self._ready.clear()
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=self._grace)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
            unfinished += [self._inflight[task].id for task in pending]
            self._inflight.clear()
        outcomes, self._outcomes = self._outcomes, []
        await self._record(outcomes)
        await self._store.deliveries.release(unfinished, owner=self._owner, now=self._clock())

    async def _load_targets(self, claimed: list[Claimed]) -> None:
        """Open the configurations whose version this worker has not seen yet."""
        stale = set()
        for delivery in claimed:
            known = self._targets.get(delivery.configuration_id)
            if delivery.configuration_version is None:
                self._targets.pop(delivery.configuration_id, None)
            elif known is None or known.version != delivery.configuration_version:
                stale.add(delivery.configuration_id)
        if not stale:
            return
        rows = await self._services.store.configurations.load(stale)
        for row in rows.values():
            integration = self._services.catalog.get(row.integration_key)
            config = open_config(self._services, row)
            self._targets[row.id] = _Target(row.version, row.on, integration, config)

    async def _attempt(self, delivery: Claimed) -> None:
        target = self._targets.get(delivery.configuration_id)
        bound = log.bind(
            delivery_id=delivery.id,
            event_id=delivery.event_id,
            configuration_id=delivery.configuration_id,
            attempt=delivery.attempt,
        )
        if target is None or not target.on:
            self._outcomes.append(self._result(delivery, DeliveryState.CANCELLED))
            bound.info("delivery.cancelled", reason="configuration turned off or deleted")
            return
        failure = await self._engine.attempt(target.integration, target.config, delivery.payload)
        integration = target.integration.key
        if failure is None:
            ATTEMPTS.labels(integration, "success").inc()
            self._outcomes.append(self._result(delivery, DeliveryState.SUCCEEDED))
            bound.debug("delivery.succeeded", integration=integration)
            return
        self._record_failure(delivery, failure, integration, bound.bind(integration=integration))

    def _record_failure(
        self, delivery: Claimed, failure: DeliveryError, integration: str, bound: Any
    ) -> None:
        decision = self._retry.decide(failure, delivery.attempt, self._rand)
        retrying = decision.action is RetryAction.RETRY
        ATTEMPTS.labels(integration, "retry" if retrying else "failed").inc()
        now = self._clock()
        record = Failure(
            status_code=failure.status_code,
            response_body=failure.response_body,
            # "HTTP 503" repeats the status code; other descriptions say more (no answer at
            # all, a 200 whose body reports a failure, which request of several failed).
            error=None
            if failure.description == f"HTTP {failure.status_code}"
            else failure.description,
            hint=failure.hint,
        )
        self._outcomes.append(
            Result(
                delivery.id,
                delivery.configuration_id,
                delivery.event_id,
                delivery.attempt,
                now,
                DeliveryState.PENDING if retrying else DeliveryState.FAILED,
                next_at=now + int(decision.delay * 1000) if retrying else None,
                failure=record,
            )
        )
        bound.warning(
            "delivery.retry_scheduled" if retrying else "delivery.failed",
            status_code=failure.status_code,
            error=failure.description,
            reason=decision.reason,
            retry_in_s=round(decision.delay, 3) if retrying else None,
        )

    def _result(self, delivery: Claimed, state: DeliveryState) -> Result:
        return Result(
            delivery.id,
            delivery.configuration_id,
            delivery.event_id,
            delivery.attempt,
            self._clock(),
            state,
        )
