"""The worker: claim due deliveries fairly, attempt them concurrently, record in batches.

    claim_due (lease, a turn per configuration) ─► Scheduler (a lane per configuration)
        ─► attempt (engine) ─► Outcomes (buffer) ─► record: states, counters, breakers
           ▲      every lease/3: extend_leases of everything held
    wake: enqueue in this process, the store's listener (PostgreSQL NOTIFY), or the poll

The parts: `targets.py` (the configuration cache), `scheduler.py` (who goes next, within the
per-configuration and worker limits), `outcomes.py` (the buffer that owns flushing), and the
breaker (`breaker.py`), which the store applies while recording. This module is the loop that
runs them and the attempt itself.

A delivery stays leased, never removed, while in flight; the worker renews its leases while a
slow request is out, and a worker that dies leaves leases that expire and are claimed again
(at-least-once). When recording pauses or turns off a configuration, the deliveries this worker
had queued for it are released uncharged. A failing database does not stop the worker: it says
so once, waits a poll interval and goes on, keeping unrecorded outcomes. On stop, the worker
claims nothing more, lets in-flight attempts finish within the grace period, records them and
releases the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from pushgate import metrics
from pushgate.breaker import Breaker, BreakerAction
from pushgate.clock import Clock
from pushgate.configurations import Services
from pushgate.delivery.engine import Attempt, Engine
from pushgate.delivery.outcomes import Outcomes
from pushgate.delivery.sampling import SuccessSample
from pushgate.delivery.scheduler import Scheduler
from pushgate.delivery.targets import Targets
from pushgate.domain import DeliveryState
from pushgate.errors import DeliverySkipped, RetryableDeliveryError
from pushgate.exchanges import capture
from pushgate.logs import Outage
from pushgate.masking import redactor
from pushgate.retry import RetryAction, RetryPolicy
from pushgate.settings import Settings
from pushgate.store import Claimed, Failure, Recorded, Result, describe, is_unavailable
from pushgate.store.attempts import Trace

log = structlog.get_logger("pushgate.delivery")

# Record outcomes at least this often (seconds) while attempts keep finishing one by one. At
# a drain's few thousand a second a record then holds about a claim's batch of 500 (at 0.05 s,
# half that: six paired drains went a median 1.15x as fast with 0.1, one of the six slower);
# a worker killed outright leaves at most this much of its outcomes to be sent again.
FLUSH_INTERVAL = 0.1
# Successes the attempt log keeps at once before its per-second rate applies (sampling.py).
SAMPLE_BURST = 100
# Leases are renewed this many times per lease period: one late or failed renewal is harmless.
RENEWALS_PER_LEASE = 3
# An attempt without an answer after this many seconds stops taking a worker slot: it only
# waits on a socket. It still counts against its configuration's limit.
SLOW_AFTER = 1.0
# Finished events past the retention period are deleted this often (seconds), a chunk per
# transaction so that no transaction holds the database for long.
PRUNE_INTERVAL = 3600.0
PRUNE_CHUNK = 1000
UNREADABLE_HINT = (
    "this worker cannot open the configuration; every process sharing the database needs the "
    "same PUSHGATE_SECRET_KEY"
)
UNKNOWN_HINT = (
    "this install no longer knows the configuration's integration; restore it (a manifest "
    "directory?) or delete the configuration"
)
# How the breaker's moves are logged.
_BREAKER_EVENTS = {
    BreakerAction.OPENED: "configuration.paused",
    BreakerAction.WAITING: "configuration.paused",
    BreakerAction.PROBE_FAILED: "configuration.probe_failed",
    BreakerAction.RESUMED: "configuration.resumed",
    BreakerAction.TURNED_OFF: "configuration.turned_off",
}


def _logger(delivery: Claimed) -> Any:
    """The delivery's logger, bound only when there is something to say (binding costs)."""
    return log.bind(
        delivery_id=delivery.id,
        event_id=delivery.event_id,
        configuration_id=delivery.configuration_id,
        attempt=delivery.attempt,
    )


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
        outage: Outage | None = None,
    ) -> None:
        self._store = services.store
        self._engine = engine
        self._clock = clock
        self._owner = owner or default_owner()
        self._retry = RetryPolicy(settings.retry_schedule, settings.retry_jitter)
        self._breaker = settings.breaker_policy()
        # This worker's own view of each configuration's breaker, from its own outcomes only:
        # enough to stop a lane at once when they would pause it. The database decides.
        self._local: dict[str, Breaker] = {}
        self._rand = rand or random.random
        self._outage = outage or Outage()
        # A success is logged only at debug level: at thousands a second, binding and writing
        # a line each would cost more than the attempt. Decided once, not per delivery.
        self._log_successes = settings.log_level == "debug"
        self._body_limit = settings.attempt_body_limit
        self._sample = SuccessSample(settings.attempt_log_successes, burst=SAMPLE_BURST)
        self._batch = settings.claim_batch_size
        self._window = 2 * settings.claim_batch_size
        self._held_bytes = settings.worker_held_bytes
        self._lease_ms = int(settings.lease_seconds * 1000)
        days = settings.retention_days
        self._retention_ms = int(days * 86_400_000) if days > 0 else None
        self._poll = settings.poll_interval
        self._grace = settings.shutdown_grace
        self._targets = Targets(services)
        self._schedule = Scheduler(
            concurrency=settings.worker_concurrency,
            per_configuration=settings.configuration_concurrency,
            window=self._window,
            slow_after=SLOW_AFTER,
        )
        self._outcomes = Outcomes(
            self._record, batch=self._batch, interval=FLUSH_INTERVAL, on_overdue=self._nudge
        )
        self._attempts: dict[asyncio.Task[None], Claimed] = {}
        self._dropped: list[int] = []  # claimed for configurations now paused: to release
        self._wake = asyncio.Event()
        self._wakes = 0  # counts reasons to look again, so a claim can tell one came while it ran
        self.idle = asyncio.Event()
        """Set while the worker waits for work: nothing due, nothing held."""
        self._claiming: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._releasing: asyncio.Task[None] | None = None
        self._finished: list[asyncio.Task[None]] = []  # ended since `_turn` last looked
        self._any_finished = asyncio.Event()
        self._aging: asyncio.TimerHandle | None = None
        self._repoll: asyncio.TimerHandle | None = None
        self._exhausted = False  # the last claim found nothing more due
        self._full: set[str] = set()  # configurations the last claim skipped: no room
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
        self._more_due()
        self._wake.set()

    def _more_due(self) -> None:
        """More may be due than the last claim saw: claim again (and again, if a claim is
        running now: it may have looked too early)."""
        self._exhausted = False
        self._wakes += 1
        self._nudge()

    def _nudge(self) -> None:
        """Make `_turn` look again now (a timer fired, work arrived)."""
        self._any_finished.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then shut down gracefully.

        Wakes on the store's notifications, polls every `poll_interval` as a fallback, renews
        its leases every `lease_seconds / 3` while it holds deliveries, and prunes finished
        events past `retention_days` every hour.
        """
        log.info(
            "worker.started",
            owner=self._owner,
            concurrency=self._schedule.concurrency,
            configuration_concurrency=self._schedule.per_configuration,
        )
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
        self._nudge()

    async def _turns(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if not await self._turn():
                    await self._idle(stop)
            except Exception as error:
                # The database went away, or this transaction lost a deadlock: nothing is lost
                # (unrecorded outcomes are kept, leases expire), so wait and go on.
                self._failed("worker.error", error)
                await self._pause(stop, self._poll)

    def _failed(self, event: str, error: Exception) -> None:
        if is_unavailable(error):
            self._outage.failed(describe(error), owner=self._owner)
        else:
            log.error(event, owner=self._owner, exc_info=error)

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
        return [*self._schedule.held(), *self._outcomes.held(), *self._dropped]

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        interval = self._lease_ms / 1000 / RENEWALS_PER_LEASE
        while not await self._pause(stop, interval):
            try:
                await self.renew_leases()
            except Exception as error:
                self._failed("worker.renew_failed", error)

    async def prune(self) -> int:
        """Delete finished events older than the retention period; returns how many went."""
        if self._retention_ms is None:
            return 0
        total = 0
        while True:
            now = self._clock()
            async with self._db:
                removed = await self._store.deliveries.prune(
                    received_before=now - self._retention_ms, limit=PRUNE_CHUNK, now=now
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
            except Exception as error:
                self._failed("retention.failed", error)
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

        Claims, records and releases run as tasks beside the HTTP attempts, so the database
        round trips do not stall sending. Returns False when nothing is due, in flight or
        unrecorded.
        """
        schedule, now = self._schedule, time.monotonic()
        schedule.age(now)
        if (
            self._claiming is None
            and not self._exhausted
            and schedule.wants_more()
            and schedule.held_bytes < self._held_bytes
        ):
            self._claiming = self._spawn(self._claim())
        elif self._exhausted and self._repoll is None:
            # Busy with attempts, nothing more was due: look again after a poll interval, for
            # retries come due and events no wake-up told of (another process on SQLite).
            self._repoll = asyncio.get_running_loop().call_later(self._poll, self._look_again)
        while (delivery := schedule.next(now)) is not None:
            self._attempts[self._spawn(self._attempt(delivery))] = delivery
        self._arm_aging(now)
        if self._flushing is None and self._outcomes.due(idle=not self._attempts):
            self._flushing = self._spawn(self._flush())
        if self._releasing is None and self._dropped:
            self._releasing = self._spawn(self._release_dropped())
        if not (self._attempts or self._claiming or self._flushing or self._releasing):
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
            elif task is self._releasing:
                self._releasing = None
            else:
                delivery = self._attempts.pop(task)
                schedule.finished(delivery)
                if delivery.configuration_id in self._full:
                    self._refilled(delivery.configuration_id)
            task.result()
        return True

    def _arm_aging(self, now: float) -> None:
        """When work waits for a worker slot, look again when the oldest attempt turns slow."""
        if self._aging is not None:
            return
        when = self._schedule.next_aging()
        if when is not None:
            self._aging = asyncio.get_running_loop().call_later(max(when - now, 0.0), self._aged)

    def _refilled(self, configuration_id: str) -> None:
        """The last claim skipped this configuration for want of room: once it has room
        again, there may be more of its deliveries due than the claim could take."""
        if self._schedule.has_room(configuration_id):
            self._full.discard(configuration_id)
            self._more_due()

    def _look_again(self) -> None:
        self._repoll = None
        self._exhausted = False
        self._nudge()

    def _aged(self) -> None:
        self._aging = None
        self._nudge()

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
        rooms = self._schedule.rooms()
        self._full = {cid for cid, room in rooms.items() if not room}
        async with self._db:
            claim = await self._store.deliveries.claim_due(
                owner=self._owner,
                now=self._clock(),
                limit=self._batch,
                lease_ms=self._lease_ms,
                room=self._window,
                rooms=rooms,
                max_bytes=self._held_bytes - self._schedule.held_bytes,
            )
            await self._targets.refresh(claim.deliveries)
        self._outage.succeeded()
        # Nothing more due now: look again when woken or polled. A wake-up during the claim
        # may be for rows committed after the claim looked: look again.
        self._exhausted = not claim.more and self._wakes == wakes
        self._claimed += len(claim.deliveries)
        self._schedule.add(claim.deliveries)
        if claim.paused:  # another worker paused them: what we queued for them waits
            self._dropped += [d.id for d in self._schedule.drop(claim.paused)]

    async def _record(self, results: list[Result]) -> Recorded:
        async with self._db:
            recorded = await self._store.deliveries.record(
                results, owner=self._owner, breaker=self._breaker
            )
        self._outage.succeeded()
        return recorded

    async def _flush(self) -> None:
        holding = self._schedule.held_lanes()  # their reason is among what this flush records
        recorded = await self._outcomes.flush()
        for change in recorded.changes:
            if change.action is BreakerAction.RESUMED:
                self._more_due()  # what waited for it is due now
            event = _BREAKER_EVENTS.get(change.action)
            if event is not None:
                log.warning(
                    event,
                    configuration_id=change.configuration_id,
                    reason=change.breaker.reason,
                    resumes_at=change.breaker.paused_until,
                )
        for cid in recorded.given_up:
            metrics.GIVEN_UP.labels(self._targets.integration_key(cid)).inc()
        if stopped := recorded.stopped:
            self._dropped += [d.id for d in self._schedule.drop(stopped)]
        for cid in holding:  # the database did not pause these: go on (dropped ones are free)
            self._schedule.release(cid)

    async def _release_dropped(self) -> None:
        ids, self._dropped = self._dropped, []
        try:
            async with self._db:
                await self._store.deliveries.release(ids, owner=self._owner, now=self._clock())
        except BaseException:
            self._dropped = ids + self._dropped  # leased still; released next time
            raise

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        if self._repoll is not None:
            self._repoll.cancel()
            self._repoll = None
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
        self._outcomes.close()
        for timer in (self._aging, self._repoll):
            if timer is not None:
                timer.cancel()
        for task in (self._claiming, self._flushing, self._releasing):
            if task is not None:
                try:
                    await task
                except Exception as error:  # outcomes are back in the buffer, leases expire
                    self._failed("worker.error", error)
        self._claiming = self._flushing = self._releasing = None
        log.info(
            "worker.stopping",
            owner=self._owner,
            in_flight=len(self._attempts),
            releasing=self._schedule.ready,
            grace_s=self._grace,
        )
        unfinished = [*self._dropped, *(d.id for d in self._schedule.drop_all())]
        self._dropped = []
        if self._attempts:
            _, pending = await asyncio.wait(self._attempts, timeout=self._grace)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
            unfinished += [self._attempts[task].id for task in pending]
            self._attempts.clear()
        if len(self._outcomes):
            await self._outcomes.flush()
        async with self._db:
            await self._store.deliveries.release(unfinished, owner=self._owner, now=self._clock())

    async def _attempt(self, delivery: Claimed) -> None:
        target = self._targets.get(delivery.configuration_id)
        if target is None or not target.on:
            self._add(self._result(delivery, DeliveryState.CANCELLED))
            _logger(delivery).info(
                "delivery.cancelled", reason="configuration turned off or deleted"
            )
            return
        if target.integration is None or target.config is None:
            hint = UNREADABLE_HINT if target.integration is not None else UNKNOWN_HINT
            attempted = Attempt(RetryableDeliveryError(target.unreadable, hint=hint), None, 0.0)
        else:
            started = time.perf_counter()
            try:
                attempted = await self._engine.run(
                    target.integration, target.config, delivery.payload, secrets=target.secrets
                )
            except DeliverySkipped as skip:
                # Not sent on purpose (a manifest template rendered nothing): finished, counted
                # neither as a success nor as an error, and nothing to the breaker.
                seconds = time.perf_counter() - started
                metrics.attempted(target.integration.key, "skipped", seconds)
                self._add(self._result(delivery, DeliveryState.SKIPPED))
                _logger(delivery).info(
                    "delivery.skipped",
                    integration=target.integration.key,
                    reason=skip.reason,
                    duration_ms=_ms(seconds),
                )
                return
        integration = target.integration.key if target.integration else "unknown"
        if attempted.failure is None:
            metrics.attempted(integration, "success", attempted.seconds)
            kept = self._sample.keep(delivery.configuration_id)
            self._add(
                self._result(
                    delivery,
                    DeliveryState.SUCCEEDED,
                    duration_ms=round(attempted.seconds * 1000),
                    trace=self._trace(attempted, target.secrets) if kept else None,
                )
            )
            if self._log_successes:
                _logger(delivery).debug(
                    "delivery.succeeded",
                    integration=integration,
                    host=attempted.host,
                    duration_ms=_ms(attempted.seconds),
                )
            return
        bound = _logger(delivery).bind(
            integration=integration, host=attempted.host, duration_ms=_ms(attempted.seconds)
        )
        self._failed_attempt(
            delivery, attempted, integration, bound, self._trace(attempted, target.secrets)
        )

    def _trace(self, attempted: Attempt, secrets: tuple[str, ...]) -> Trace:
        """What the attempt log keeps of an attempt: masked with the target's redactor."""
        response = attempted.response
        return Trace(
            status_code=None if response is None else response.status,
            detail=capture(attempted.request, response, redactor(secrets), limit=self._body_limit),
        )

    def _failed_attempt(
        self,
        delivery: Claimed,
        attempted: Attempt,
        integration: str,
        bound: Any,
        trace: Trace,
    ) -> None:
        failure = attempted.failure
        assert failure is not None
        decision = self._retry.decide(failure, delivery.attempt, self._rand)
        retrying = decision.action is RetryAction.RETRY
        metrics.attempted(integration, "retry" if retrying else "failed", attempted.seconds)
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
            retryable=isinstance(failure, RetryableDeliveryError),
            retry_after=failure.retry_after,
        )
        self._add(
            self._result(
                delivery,
                DeliveryState.PENDING if retrying else DeliveryState.FAILED,
                at=now,
                next_at=now + int(decision.delay * 1000) if retrying else None,
                failure=record,
                duration_ms=round(attempted.seconds * 1000),
                trace=trace,
            )
        )
        bound.warning(
            "delivery.retry_scheduled" if retrying else "delivery.failed",
            status_code=failure.status_code,
            error=failure.description,
            reason=decision.reason,
            retry_in_s=round(decision.delay, 3) if retrying else None,
            probe=delivery.probe,
        )

    def _add(self, result: Result) -> None:
        """Buffer a result; if this worker's own outcomes would pause the configuration, hold
        its lane and record at once, so that no more attempts start before the breaker's
        decision is in."""
        self._outcomes.add(result)
        cid = result.configuration_id
        if result.failure is None and cid not in self._local:
            return  # a success of a configuration with no failures here: nothing to fold
        outcome = result.outcome()
        if outcome is None:
            return
        decision = self._breaker.decide(self._local.get(cid, Breaker()), outcome)
        if decision.state.paused or decision.state.off:
            self._local.pop(cid, None)
            self._schedule.hold(cid)
            self._outcomes.hurry()
        elif decision.state.failures:
            self._local[cid] = decision.state
        else:
            self._local.pop(cid, None)

    def _result(
        self,
        delivery: Claimed,
        state: DeliveryState,
        *,
        at: int | None = None,
        next_at: int | None = None,
        failure: Failure | None = None,
        duration_ms: int | None = None,
        trace: Trace | None = None,
    ) -> Result:
        return Result(
            delivery.id,
            delivery.configuration_id,
            delivery.event_id,
            delivery.attempt,
            self._clock() if at is None else at,
            state,
            next_at=next_at,
            failure=failure,
            probe=delivery.probe,
            duration_ms=duration_ms,
            trace=trace,
        )


def _ms(seconds: float) -> float:
    """A duration as log lines give it: milliseconds, to a tenth."""
    return round(seconds * 1000, 1)
