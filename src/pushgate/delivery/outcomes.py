"""The worker's outcome buffer: attempts' results, recorded a batch per transaction.

A flush is due when a batch is full, when nothing else is in flight, or `interval` seconds
after the oldest buffered result (attempts may finish one by one, slowly). A flush that fails
puts its results back: they are recorded next time, never lost while the worker lives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pushgate.store import Recorded, Result


class Outcomes:
    """Buffers results; `flush` records them through `record`."""

    def __init__(
        self,
        record: Callable[[list[Result]], Awaitable[Recorded]],
        *,
        batch: int,
        interval: float,
        on_overdue: Callable[[], None],
    ) -> None:
        self._record = record
        self._batch = batch
        self._interval = interval
        self._on_overdue = on_overdue
        self._buffered: list[Result] = []
        self._recording: list[Result] = []
        self._timer: asyncio.TimerHandle | None = None
        self._overdue = False

    def __len__(self) -> int:
        return len(self._buffered)

    def add(self, result: Result) -> None:
        """Buffer one result; the first of a batch starts the interval."""
        self._buffered.append(result)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._elapsed)

    def due(self, *, idle: bool) -> bool:
        """True when a flush should start (`idle`: no attempt is in flight)."""
        return bool(self._buffered) and (
            idle or self._overdue or len(self._buffered) >= self._batch
        )

    def hurry(self) -> None:
        """Make the next flush due now (a result the breaker must see at once)."""
        if self._buffered:
            self._overdue = True

    def held(self) -> list[int]:
        """Deliveries whose results are buffered or being recorded (still leased)."""
        return [r.delivery_id for r in (*self._buffered, *self._recording)]

    async def flush(self) -> Recorded:
        """Record everything buffered in one transaction."""
        self._stop_timer()
        taken, self._buffered = self._buffered, []
        self._recording = taken
        try:
            return await self._record(taken)
        except BaseException:
            self._buffered = taken + self._buffered  # recorded next time, not lost
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._interval, self._elapsed)
            raise
        finally:
            self._recording = []

    def close(self) -> None:
        """Stop the interval timer (shutting down)."""
        self._stop_timer()

    def _elapsed(self) -> None:
        self._timer = None
        self._overdue = True
        self._on_overdue()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._overdue = None, False
