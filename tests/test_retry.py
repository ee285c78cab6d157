"""RetryPolicy: a table of (failure, attempt) → decision."""

from __future__ import annotations

import pytest

from pushgate.errors import (
    BlockedTarget,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    TransportError,
)
from pushgate.retry import MAX_RETRY_AFTER_SECONDS, RetryAction, RetryPolicy

POLICY = RetryPolicy(schedule=(5.0, 30.0, 120.0), jitter=0.2)


def middle() -> float:
    return 0.5  # no jitter: factor 1 + 0.2 * (2 * 0.5 - 1) = 1


@pytest.mark.parametrize(
    ("failure", "attempt", "action", "delay"),
    [
        (RetryableDeliveryError("HTTP 503", status_code=503), 1, RetryAction.RETRY, 5.0),
        (RetryableDeliveryError("HTTP 503", status_code=503), 2, RetryAction.RETRY, 30.0),
        (RetryableDeliveryError("HTTP 503", status_code=503), 3, RetryAction.RETRY, 120.0),
        (RetryableDeliveryError("HTTP 503", status_code=503), 4, RetryAction.GIVE_UP, 0.0),
        (TransportError("refused"), 1, RetryAction.RETRY, 5.0),
        (PermanentDeliveryError("HTTP 400", status_code=400), 1, RetryAction.GIVE_UP, 0.0),
        (BlockedTarget("10.0.0.1 is private"), 1, RetryAction.GIVE_UP, 0.0),
        (RetryableDeliveryError("HTTP 429", retry_after=60), 1, RetryAction.RETRY, 60.0),
        (RetryableDeliveryError("HTTP 429", retry_after=1), 2, RetryAction.RETRY, 30.0),
        (
            RetryableDeliveryError("HTTP 429", retry_after=10**9),
            1,
            RetryAction.RETRY,
            MAX_RETRY_AFTER_SECONDS,
        ),
    ],
)
def test_decision_table(
    failure: DeliveryError, attempt: int, action: RetryAction, delay: float
) -> None:
    decision = POLICY.decide(failure, attempt, middle)
    assert decision.action is action
    assert decision.delay == pytest.approx(delay)


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (1.0, 1.2)])
def test_jitter_scales_the_delay_within_bounds(draw: float, factor: float) -> None:
    decision = POLICY.decide(TransportError("timeout"), 2, lambda: draw)
    assert decision.delay == pytest.approx(30.0 * factor)


def test_empty_schedule_never_retries() -> None:
    decision = RetryPolicy(schedule=()).decide(TransportError("timeout"), 1)
    assert decision.action is RetryAction.GIVE_UP
    assert "exhausted" in decision.reason
