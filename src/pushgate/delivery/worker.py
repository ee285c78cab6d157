"""The worker: claim due deliveries in batches, attempt them concurrently, record in batches.

    claim_due (lease) ─► attempt (N in flight) ─► outcomes buffer ─► record (one transaction)
           ▲                     │ every lease/3: extend_leases of everything held
    wake: enqueue in this process, the store's listener (PostgreSQL NOTIFY), or the poll

A delivery stays leased, never removed, while in flight; the worker renews its leases while a
slow request is out, and a worker that dies leaves leases that expire and are claimed again
(at-least-once). A failing database does not stop the worker: it logs, waits a poll interval
and goes on, keeping unrecorded outcomes. On stop, the worker claims nothing more, lets
in-flight attempts finish within the grace period, records them and releases the rest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import secrets
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from pushgate.clock import Clock
from pushgate.configurations import Services, open_config
from pushgate.delivery.engine import Engine
from pushgate.errors import DeliveryError, DeliverySkipped, RetryableDeliveryError
from pushgate.integrations.base import Integration, IntegrationConfig
from pushgate.metrics import ATTEMPTS
from pushgate.retry import RetryAction, RetryPolicy
from pushgate.settings import Settings
from pushgate.store import Claimed, DeliveryState, Failure, Result

log = structlog.get_logger("pushgate.delivery")

# Record outcomes at least this often (seconds) while attempts keep finishing one by one.
FLUSH_INTERVAL = 0.05
# Leases are renewed this many times per lease period: one late or failed renewal is harmless.
RENEWALS_PER_LEASE = 3
# Finished events past the retention period are deleted this often (seconds), a chunk per
# transaction so that no transaction holds the database for long.
PRUNE_INTERVAL = 3600.0
PRUNE_CHUNK = 1000
UNREADABLE_HINT = (
    "this worker cannot open the configuration; every process sharing the database needs the "
    "same PUSHGATE_SECRET_KEY"
)


@dataclass(frozen=True, slots=True)
class _Target:
    version: int
    on: bool
    integration: Integration[Any]
    config: IntegrationConfig | None
    unreadable: str = ""  # why `config` is None: its secrets do not open with our key


def default_owner() -> str:
    """A lease owner name that says which process holds a delivery, unique to this run.

    The random part matters: a restarted container often has the same host name and pid.
    """
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


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
        days = settings.retention_days
        self._retention_ms = int(days * 86_400_000) if days > 0 else None
        self._poll = settings.poll_interval
        self._grace = settings.shutdown_grace
        self._targets: dict[str, _Target] = {}
        self._ready: collections.deque[Claimed] = collections.deque()
        self._inflight: dict[asyncio.Task[None], Claimed] = {}
        self._outcomes: list[Result] = []
        self._wake = asyncio.Event()
        self._wakes = 0  # counts wake-ups, so a claim can tell one came while it ran
        self.idle = asyncio.Event()
        """Set while the worker waits for work: nothing due, nothing held."""
        self._claiming: asyncio.Task[None] | None = None
        self._finished: list[asyncio.Task[None]] = []  # ended since `_turn` last looked
        self._any_finished = asyncio.Event()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_overdue = False
        self._flushing: asyncio.Task[None] | None = None
        self._recording: list[Result] = []  # outcomes the flushing task is recording
        self._exhausted = False  # the last claim found less than a batch due
        self._claimed = 0
        # One database operation at a time per worker: SQLite has one writer anyway, waiting
        # here is cheaper than SQLite's busy-retry sleeps, and a lease renewal never races a
        # claim or a record of the same worker for its rows.
        self._db = asyncio.Lock()

    @property
    def owner(self) -> str:
        """The name this worker's leases carry."""
        return self._owner

    def wake(self) -> None:
        """Tell the worker new deliveries may be due (called after events are enqueued)."""
        self._exhausted = False
        self._wakes += 1
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then shut down gracefully.

        Wakes on the store's notifications, polls every `poll_interval` as a fallback, renews
        its leases every `lease_seconds / 3` while it holds deliveries, and prunes finished
        events past `retention_days` every hour.
        """
        log.info("worker.started", owner=self._owner, concurrency=self._concurrency)
        try:
            async with self._store.deliveries.listen(self.wake):
                stop_background = asyncio.Event()
                background = [
                    asyncio.create_task(self._keep_leases(stop_background)),
                    asyncio.create_task(self._keep_pruned(stop_background)),
                ]
                try:
                    await self._loop(stop)
                finally:
                    try:
                        await self._drain()
                    finally:
                        stop_background.set()
                        await asyncio.gather(*background)
        finally:
            log.info("worker.stopped", owner=self._owner)

    async def _loop(self, stop: asyncio.Event) -> None:
        interrupt = asyncio.create_task(self._interrupt_when(stop))
        try:
            await self._turns(stop)
        finally:
            interrupt.cancel()

    async def _interrupt_when(self, stop: asyncio.Event) -> None:
        """A stop must end `_turn`'s wait even while attempts hang (until the grace period)."""
        await stop.wait()
        self._any_finished.set()

    async def _turns(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if not await self._turn():
                    await self._idle(stop)
            except Exception:
                # The database went away, or this transaction lost a deadlock: nothing is lost
                # (unrecorded outcomes are kept, leases expire), so wait and go on.
                log.exception("worker.error", owner=self._owner)
                await self._pause(stop, self._poll)

    async def renew_leases(self) -> None:
        """Extend the lease of every delivery this worker holds to `now + lease_seconds`."""
        async with self._db:
            held = self._held()
            if not held:
                return
            renewed = await self._store.deliveries.extend_leases(
                held, owner=self._owner, now=self._clock(), lease_ms=self._lease_ms
            )
        if len(renewed) < len(held):
            # Expired before we renewed (a stall longer than a lease): another worker may send
            # these too. At-least-once still holds; say so.
            log.warning("worker.leases_lost", owner=self._owner, count=len(held) - len(renewed))

    def _held(self) -> list[int]:
        """Deliveries claimed and not yet recorded or released."""
        return [
            *(delivery.id for delivery in self._ready),
            *(delivery.id for delivery in self._inflight.values()),
            *(result.delivery_id for result in (*self._outcomes, *self._recording)),
        ]

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        interval = self._lease_ms / 1000 / RENEWALS_PER_LEASE
        while not await self._pause(stop, interval):
            try:
                await self.renew_leases()
            except Exception:
                log.exception("worker.renew_failed", owner=self._owner)

    async def prune(self) -> int:
        """Delete finished events older than the retention period; returns how many went."""
        if self._retention_ms is None:
            return 0
        total = 0
        while True:
            async with self._db:
                removed = await self._store.deliveries.prune(
                    received_before=self._clock() - self._retention_ms, limit=PRUNE_CHUNK
                )
            total += removed
            if removed < PRUNE_CHUNK:
                break
        if total:
            log.info("retention.pruned", owner=self._owner, events=total)
        return total

    async def _keep_pruned(self, stop: asyncio.Event) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("retention.failed", owner=self._owner)
            if await self._pause(stop, PRUNE_INTERVAL):
                return

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> bool:
        """Wait `seconds` or until `stop`; True when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        return stop.is_set()

    async def run_until_idle(self) -> int:
        """Deliver until nothing is due at the clock's current time; returns attempts made.

        No listener and no lease renewal: for tests, benchmarks and one-off drains.
        """
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
            self._claiming = self._spawn(self._claim())
        while self._ready and len(self._inflight) < self._concurrency:
            delivery = self._ready.popleft()
            self._inflight[self._spawn(self._attempt(delivery))] = delivery
        if self._outcomes and (
            len(self._outcomes) >= self._batch or not self._inflight or self._flush_overdue
        ):
            self._start_flush()
        if not (self._inflight or self._claiming or self._flushing):
            return False
        if not self._finished:
            self._any_finished.clear()
            await self._any_finished.wait()
        done, self._finished = self._finished, []
        for task in done:
            if task is self._claiming:
                self._claiming = None
            elif task is self._flushing:
                self._flushing = None
            else:
                del self._inflight[task]
            task.result()
        if self._outcomes and self._flush_timer is None:
            # Attempts may finish slowly: record what finished within FLUSH_INTERVAL anyway.
            self._flush_timer = asyncio.get_running_loop().call_later(
                FLUSH_INTERVAL, self._flush_is_overdue
            )
        return True

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start `work`; when it ends, `_turn` hears of it. (`asyncio.wait` over every task in
        flight would cost a callback per task per turn, which shows at thousands a second.)"""
        task = asyncio.create_task(work)
        task.add_done_callback(self._on_finished)
        return task

    def _on_finished(self, task: asyncio.Task[None]) -> None:
        self._finished.append(task)
        self._any_finished.set()

    async def _claim(self) -> None:
        wakes = self._wakes
        async with self._db:
            claimed = await self._store.deliveries.claim_due(
                owner=self._owner, now=self._clock(), limit=self._batch, lease_ms=self._lease_ms
            )
            await self._load_targets(claimed)
        # A short batch means nothing more is due now; look again when woken or polled. A
        # wake-up during the claim may be for rows committed after the claim looked: look again.
        self._exhausted = len(claimed) < self._batch and self._wakes == wakes
        self._claimed += len(claimed)
        self._ready.extend(claimed)

    def _flush_is_overdue(self) -> None:
        self._flush_overdue = True
        self._any_finished.set()

    def _start_flush(self) -> None:
        if self._flushing is None:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
            self._flush_timer, self._flush_overdue = None, False
            outcomes, self._outcomes = self._outcomes, []
            self._recording = outcomes
            self._flushing = self._spawn(self._record(outcomes))

    async def _record(self, outcomes: list[Result]) -> None:
        self._recording = outcomes
        try:
            async with self._db:
                await self._store.deliveries.record(outcomes, owner=self._owner)
        except BaseException:
            self._outcomes = outcomes + self._outcomes  # recorded next time, not lost
            raise
        finally:
            self._recording = []

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        self.idle.set()
        try:
            await asyncio.wait(waiters, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.idle.clear()
            for waiter in waiters:
                waiter.cancel()
        self._exhausted = False

    async def _drain(self) -> None:
        """Let in-flight attempts finish within the grace period; release everything else."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        for task in (self._claiming, self._flushing):
            if task is not None:
                try:
                    await task
                except Exception:  # its outcomes are back in the buffer, or its leases expire
                    log.exception("worker.error", owner=self._owner)
        self._claiming = self._flushing = None
        log.info(
            "worker.stopping",
            owner=self._owner,
            in_flight=len(self._inflight),
            releasing=len(self._ready),
            grace_s=self._grace,
        )
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
        async with self._db:
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
            try:
                config = open_config(self._services, row)
            except ValueError as error:
                # Typically a process with another PUSHGATE_SECRET_KEY: show it in the error log
                # of the configuration, rather than failing the whole batch again and again.
                log.error("configuration.unreadable", configuration_id=row.id, error=str(error))
                self._targets[row.id] = _Target(row.version, row.on, integration, None, str(error))
                continue
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
        if target.config is None:
            failure: DeliveryError | None = RetryableDeliveryError(
                target.unreadable, hint=UNREADABLE_HINT
            )
        else:
            try:
                failure = await self._engine.attempt(
                    target.integration, target.config, delivery.payload
                )
            except DeliverySkipped as skip:
                # Not sent on purpose (a manifest template rendered nothing): finished, counted
                # neither as a success nor as an error. Recorded as CANCELLED, the final state
                # of deliveries that were not attempted.
                ATTEMPTS.labels(target.integration.key, "skipped").inc()
                self._outcomes.append(self._result(delivery, DeliveryState.CANCELLED))
                bound.info(
                    "delivery.skipped", integration=target.integration.key, reason=skip.reason
                )
                return
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
