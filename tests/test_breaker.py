"""BreakerPolicy: a table of (breaker state, outcome) → decision."""

from __future__ import annotations

import pytest

from pushgate.breaker import Breaker, BreakerAction, BreakerPolicy, Outcome

POLICY = BreakerPolicy(threshold=3, base=5.0, cap=40.0, wait_cap=3600.0)
T = 1_000_000
OK = Outcome(at=T, ok=True)
FAIL = Outcome(at=T, ok=False, status_code=500, description="HTTP 500")
PROBE_FAIL = Outcome(at=T, ok=False, status_code=500, probe=True, description="HTTP 500")
PAUSED = Breaker(failures=3, opened=1, paused_until=T, reason="x", since=T - 5000)


@pytest.mark.parametrize(
    ("state", "outcome", "action", "expected", "hold"),
    [
        # healthy stays healthy
        (Breaker(), OK, BreakerAction.NONE, Breaker(), False),
        # failures count up while closed; since is when the run began
        (Breaker(), FAIL, BreakerAction.COUNTED, Breaker(failures=1, since=T), False),
        (
            Breaker(failures=1, since=T - 9),
            FAIL,
            BreakerAction.COUNTED,
            Breaker(failures=2, since=T - 9),
            False,
        ),
        # the threshold opens it: paused for `base`
        (
            Breaker(failures=2, since=T - 9),
            FAIL,
            BreakerAction.OPENED,
            Breaker(failures=3, opened=1, paused_until=T + 5000, since=T),
            False,
        ),
        # a success from failing or paused closes it
        (Breaker(failures=2, since=T - 9), OK, BreakerAction.RESUMED, Breaker(since=T), False),
        (
            PAUSED,
            Outcome(at=T, ok=True, probe=True),
            BreakerAction.RESUMED,
            Breaker(since=T),
            False,
        ),
        # while paused only the probe speaks: a success sent before the pause changes nothing
        (PAUSED, OK, BreakerAction.NONE, PAUSED, False),
        # a failed probe doubles the back-off and keeps its delivery uncharged
        (
            PAUSED,
            PROBE_FAIL,
            BreakerAction.PROBE_FAILED,
            Breaker(failures=4, opened=2, paused_until=T + 10_000, since=T - 5000),
            True,
        ),
        # ... up to the cap (5 · 2^4 = 80 > 40)
        (
            Breaker(failures=9, opened=4, paused_until=T, since=T - 5000),
            PROBE_FAIL,
            BreakerAction.PROBE_FAILED,
            Breaker(failures=10, opened=5, paused_until=T + 40_000, since=T - 5000),
            True,
        ),
        # a probe refused for good is given up as usual (not probed again and again)
        (
            PAUSED,
            Outcome(at=T, ok=False, retryable=False, status_code=400, probe=True),
            BreakerAction.PROBE_FAILED,
            Breaker(failures=4, opened=2, paused_until=T + 10_000, since=T - 5000),
            False,
        ),
        # an attempt sent before the pause began only counts
        (
            PAUSED,
            FAIL,
            BreakerAction.COUNTED,
            Breaker(failures=4, opened=1, paused_until=T, since=T - 5000),
            False,
        ),
        # Retry-After on 429/503 pauses at once, capped
        (
            Breaker(),
            Outcome(at=T, ok=False, status_code=429, retry_after=30),
            BreakerAction.WAITING,
            Breaker(failures=1, paused_until=T + 30_000, since=T),
            False,
        ),
        (
            Breaker(),
            Outcome(at=T, ok=False, status_code=503, retry_after=10**9),
            BreakerAction.WAITING,
            Breaker(failures=1, paused_until=T + 3_600_000, since=T),
            False,
        ),
        # ... a probe told to wait is held
        (
            PAUSED,
            Outcome(at=T, ok=False, status_code=429, retry_after=7, probe=True),
            BreakerAction.WAITING,
            Breaker(failures=4, opened=1, paused_until=T + 7000, since=T - 5000),
            True,
        ),
        # Retry-After on another status is the retry policy's business only
        (
            Breaker(),
            Outcome(at=T, ok=False, status_code=500, retry_after=30),
            BreakerAction.COUNTED,
            Breaker(failures=1, since=T),
            False,
        ),
        # 410 turns it off and holds the delivery
        (
            Breaker(failures=1, since=T - 9),
            Outcome(at=T, ok=False, retryable=False, status_code=410),
            BreakerAction.TURNED_OFF,
            Breaker(failures=2, since=T, off=True),
            True,
        ),
        # while off, failures are held and successes change nothing
        (Breaker(off=True), FAIL, BreakerAction.NONE, Breaker(off=True), True),
        (Breaker(off=True), OK, BreakerAction.NONE, Breaker(off=True), False),
    ],
)
def test_decision_table(
    state: Breaker, outcome: Outcome, action: BreakerAction, expected: Breaker, hold: bool
) -> None:
    decision = POLICY.decide(state, outcome)
    assert decision.action is action
    assert (decision.state.failures, decision.state.opened) == (expected.failures, expected.opened)
    assert decision.state.paused_until == expected.paused_until
    assert (decision.state.since, decision.state.off) == (expected.since, expected.off)
    assert decision.hold is hold


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        (FAIL, "the last attempt failed: HTTP 500"),
        (Outcome(at=T, ok=False, status_code=429, retry_after=30), "Retry-After 30 s"),
        (Outcome(at=T, ok=False, status_code=410, description="HTTP 410"), "410 Gone"),
    ],
)
def test_the_reason_says_what_happened(outcome: Outcome, words: str) -> None:
    reason = POLICY.decide(Breaker(), outcome).state.reason
    assert reason is not None
    assert words in reason


def test_the_run_that_opens_it_is_named_in_the_reason() -> None:
    reason = POLICY.decide(Breaker(failures=2), FAIL).state.reason
    assert reason == "3 attempts in a row failed; the last: HTTP 500"


@pytest.mark.parametrize(
    ("opened", "seconds"), [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (9, 40.0)]
)
def test_backoff_doubles_up_to_the_cap(opened: int, seconds: float) -> None:
    assert POLICY.backoff(opened) == seconds
