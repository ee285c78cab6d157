"""Wake-ups across processes: PostgreSQL LISTEN/NOTIFY on one dedicated connection.

    ingest ─► enqueue transaction ─► NOTIFY <channel>  (PostgreSQL sends it at commit)
                                             │
    worker ◄── wake() ◄── Listener: LISTEN <channel> on its own connection, reconnecting

A notification is only a hint that deliveries may be due: workers still poll, and the listener
wakes its worker once after every (re)connect, because whatever was sent while it was not
listening is lost. The connection is not taken from the pool, so pool sizes stay what the
settings say; `application_name` shows it as `pushgate-listener` in `pg_stat_activity`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger("pushgate.store")

# Seconds between attempts to get the listening connection back; the poll covers the gap.
RECONNECT_DELAY = 1.0
CHANNEL = "pushgate_due"


def channel_name(schema: str | None) -> str:
    """The NOTIFY channel of one install: channels are per database, schemas share them."""
    return CHANNEL if schema is None else f"{CHANNEL}_{schema}"


class Listener:
    """Calls a function whenever deliveries were enqueued, in any process."""

    def __init__(self, engine: AsyncEngine, channel: str) -> None:
        self._engine = engine  # unpooled: each connect() opens, and closing really closes
        self.channel = channel

    @contextlib.asynccontextmanager
    async def listening(self, wake: Callable[[], None]) -> AsyncIterator[None]:
        """Call `wake` on every notification (and after every reconnect) inside the block.

        Enters once LISTEN is active, or once the first attempt failed: then it keeps trying in
        the background while the caller relies on polling.
        """
        stop = asyncio.Event()
        ready = asyncio.Event()
        task = asyncio.create_task(self._listen(wake, ready, stop))
        readied = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait({task, readied}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # a bug, not a lost connection: let it surface
            yield
        finally:
            readied.cancel()
            stop.set()  # let the connection close cleanly rather than cancelling mid-close
            await task

    async def _listen(
        self, wake: Callable[[], None], ready: asyncio.Event, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            try:
                await self._session(wake, ready, stop)
            except Exception as error:  # network, driver or server errors: one remedy, retry
                log.warning("listener.failed", channel=self.channel, error=repr(error))
            ready.set()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RECONNECT_DELAY)

    async def _session(
        self, wake: Callable[[], None], ready: asyncio.Event, stop: asyncio.Event
    ) -> None:
        """One connection's life: LISTEN, wake on each notification, until lost or stopped."""
        async with self._engine.connect() as connection:
            driver: Any = (await connection.get_raw_connection()).driver_connection
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _connection: lost.set())
            await driver.add_listener(self.channel, lambda *_notification: wake())
            ready.set()
            wake()  # notifications sent while we were not listening are gone: look once
            log.info("listener.listening", channel=self.channel)
            waiters = [asyncio.create_task(lost.wait()), asyncio.create_task(stop.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if lost.is_set():
                log.warning("listener.lost", channel=self.channel)
                await connection.invalidate()
