"""Retry policy: a pure function from (failure, attempt number) to a decision.

The engine applies the decision; it never decides itself. The schedule is configuration
(`PUSHGATE_RETRY_SCHEDULE`).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from pushgate.errors import DeliveryError, RetryableDeliveryError

# A receiver asking for more than a day is almost certainly wrong; we do not park deliveries longer.
MAX_RETRY_AFTER_SECONDS = 86_400.0


class RetryAction(enum.StrEnum):
    """What happens to a delivery after a failed attempt."""

    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """The outcome of `RetryPolicy.decide`: retry after `delay` seconds, or give up, and why."""

    action: RetryAction
    reason: str
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry retryable failures on `schedule` (seconds before retry n), scaled by 1±jitter.

    A `Retry-After` from the receiver is honoured: the delay is never shorter than it asks
    (capped at `MAX_RETRY_AFTER_SECONDS`).
    """

    schedule: tuple[float, ...]
    jitter: float = 0.2

    def decide(
        self,
        failure: DeliveryError,
        attempt: int,
        rand: Callable[[], float] = random.random,
    ) -> RetryDecision:
        """Decide after attempt number `attempt` (1 = the first try) failed with `failure`."""
        if not isinstance(failure, RetryableDeliveryError):
            return RetryDecision(RetryAction.GIVE_UP, "permanent failure")
        if attempt > len(self.schedule):
            return RetryDecision(RetryAction.GIVE_UP, f"retries exhausted after {attempt} attempts")
        delay = self.schedule[attempt - 1] * (1.0 + self.jitter * (2.0 * rand() - 1.0))
        reason = f"retry {attempt} of {len(self.schedule)}"
        if failure.retry_after is not None:
            asked = min(max(failure.retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
            if asked > delay:
                delay, reason = asked, f"{reason}, Retry-After {asked:g}s"
        return RetryDecision(RetryAction.RETRY, reason, max(delay, 0.0))
