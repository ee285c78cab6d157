"""Which successful attempts the attempt log keeps in full: a token bucket per configuration.

Every failure is kept. Successes are kept up to `rate` a second per configuration, after a
burst of `burst` (a quiet configuration keeps every one). Why not all of them: under load the
log's bound (PUSHGATE_ATTEMPT_LOG_SIZE, 1,000) would hold less than a second of a busy
configuration, so keeping each success would buy nothing a person can read, and masking and
writing the request and response of each one cost the worker a third of its drain rate
(docs/benchmarks.md). A steady sample keeps minutes of successes in view instead. The status
counters and the hourly charts count every attempt whatever the sample keeps.

Each worker process samples on its own, by the monotonic clock (this is about how much work
a process does, not about the time the deliveries carry).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SuccessSample:
    """`keep(configuration_id)`: True when this success goes to the attempt log in full."""

    def __init__(
        self, rate: float, *, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst) if rate > 0 else 0.0
        self._clock = clock
        # configuration id → (tokens left, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    def keep(self, configuration_id: str) -> bool:
        """Take a token of the configuration's bucket, if one is left."""
        now = self._clock()
        tokens, then = self._buckets.get(configuration_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        if tokens < 1.0:
            self._buckets[configuration_id] = (tokens, now)
            return False
        self._buckets[configuration_id] = (tokens - 1.0, now)
        return True
