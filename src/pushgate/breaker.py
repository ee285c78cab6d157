"""The circuit breaker: a pure function from (breaker state, one attempt's outcome) to a decision.

One breaker per configuration, its state kept in the database so every worker sees it:

    closed ──failure──► closed, failing (count) ──`threshold` in a row──► open (paused)
       ▲                                                                     │ at `paused_until`
       └───── success (while closed: any attempt) ◄─ probe: one real delivery ◄┘
                                                    └─ probe fails: open again, longer

    a 429 or 503 with Retry-After ─► open until then (capped), whatever the count
    a 410 Gone ─► turned off, with the reason; its deliveries are held

A paused or off configuration keeps its deliveries pending: they are not attempted and not
charged against their retry schedule. The store applies the decision in the transaction that
records the attempt; the worker only reports outcomes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

# Statuses with which a receiver asks the sender to come back later.
WAIT_STATUSES = frozenset({429, 503})
GONE = 410


class BreakerAction(enum.StrEnum):
    """What an outcome did to the breaker (for the log and the tests)."""

    NONE = "none"  # healthy and still healthy
    COUNTED = "counted"  # one more failure in a row, still closed
    OPENED = "opened"  # the run of failures reached the threshold: paused
    WAITING = "waiting"  # the receiver asked to wait (Retry-After): paused until then
    PROBE_FAILED = "probe_failed"  # the probe failed: paused again, for longer
    RESUMED = "resumed"  # a success closed the breaker
    TURNED_OFF = "turned_off"  # 410 Gone: the configuration is turned off


@dataclass(frozen=True, slots=True)
class Breaker:
    """A configuration's breaker as stored.

    `paused_until` is set while open (the probe is due then); `opened` counts the openings
    since the last success, which grows the back-off; `since` is when the current state began.
    """

    failures: int = 0
    opened: int = 0
    paused_until: int | None = None
    reason: str | None = None
    since: int | None = None
    off: bool = False  # turned off by the receiver (410); held until a user turns it on

    @property
    def paused(self) -> bool:
        """True while open."""
        return self.paused_until is not None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt as the breaker sees it. `at` in Unix ms; `retry_after` in seconds."""

    at: int
    ok: bool
    retryable: bool = True
    status_code: int | None = None
    retry_after: float | None = None
    probe: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class BreakerDecision:
    """The new state; `hold` keeps the attempt's delivery pending without charging it."""

    state: Breaker
    action: BreakerAction
    hold: bool = False


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Open after `threshold` failed attempts in a row; probe after `base` seconds, doubling
    per failed probe up to `cap`; a receiver's Retry-After pauses at most `wait_cap` seconds."""

    threshold: int = 5
    base: float = 5.0
    cap: float = 300.0
    wait_cap: float = 3600.0

    def backoff(self, opened: int) -> float:
        """Seconds until the probe after the `opened`-th opening in a row (1 = the first)."""
        return min(self.base * 2.0 ** max(opened - 1, 0), self.cap)

    def decide(self, state: Breaker, outcome: Outcome) -> BreakerDecision:
        """Fold one attempt's outcome into the breaker."""
        if state.off:
            return BreakerDecision(state, BreakerAction.NONE, hold=not outcome.ok)
        if outcome.ok:
            if state == Breaker(since=state.since) or (state.paused and not outcome.probe):
                # Healthy already; or paused, where only the probe speaks: an attempt sent
                # before the pause proves little, and a receiver that asked to wait is obeyed.
                return BreakerDecision(state, BreakerAction.NONE)
            return BreakerDecision(Breaker(since=outcome.at), BreakerAction.RESUMED)
        failures = state.failures + 1
        what = outcome.description or "the attempt failed"
        if outcome.status_code == GONE:
            reason = f"the receiver answered 410 Gone: this endpoint no longer exists ({what})"
            off = Breaker(failures=failures, reason=reason, since=outcome.at, off=True)
            return BreakerDecision(off, BreakerAction.TURNED_OFF, hold=True)
        if outcome.status_code in WAIT_STATUSES and outcome.retry_after is not None:
            wait = min(max(outcome.retry_after, 0.0), self.wait_cap)
            paused = replace(
                state,
                failures=failures,
                paused_until=outcome.at + round(wait * 1000),
                reason=f"the receiver answered {outcome.status_code} with Retry-After {wait:g} s",
                since=state.since if state.paused else outcome.at,
            )
            return BreakerDecision(paused, BreakerAction.WAITING, hold=outcome.probe)
        if state.paused:
            if not outcome.probe:
                # Sent before the pause began; the pause stands as it is.
                return BreakerDecision(replace(state, failures=failures), BreakerAction.COUNTED)
            opened = state.opened + 1
            again = replace(
                state,
                failures=failures,
                opened=opened,
                paused_until=outcome.at + round(self.backoff(opened) * 1000),
                reason=f"the probe failed: {what}",
            )
            # A retryable failure keeps the probe's delivery as it was; one that can never
            # succeed (a refused payload) is given up as usual, so it is not probed forever.
            return BreakerDecision(again, BreakerAction.PROBE_FAILED, hold=outcome.retryable)
        if failures >= self.threshold:
            tripped = Breaker(
                failures=failures,
                opened=1,
                paused_until=outcome.at + round(self.backoff(1) * 1000),
                reason=f"{failures} attempts in a row failed; the last: {what}",
                since=outcome.at,
            )
            return BreakerDecision(tripped, BreakerAction.OPENED)
        failing = replace(
            state,
            failures=failures,
            reason=f"the last attempt failed: {what}",
            since=state.since if state.failures else outcome.at,
        )
        return BreakerDecision(failing, BreakerAction.COUNTED)
