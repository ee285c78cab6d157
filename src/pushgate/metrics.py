"""Prometheus metrics: every series pushgate exposes at /metrics (docs/operations.md lists them).

Counters and histograms count what this process did (attempts, HTTP requests, events); the
backlog gauges (`Gauges`) say what the database holds, so every process — API node or worker —
reports the same values: aggregate them with `max`, not `sum`. They are read at most every
`BACKLOG_TTL` seconds, however often and by however many scrapers /metrics is asked.

Series names are a contract (dashboards and alerts rely on them): change them only with a
changelog entry. The `_created` series prometheus-client adds to every counter are not exposed.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import structlog
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from pushgate.clock import Clock
from pushgate.configurations import health_state
from pushgate.domain import HealthState
from pushgate.logs import Outage
from pushgate.store import Backlog, describe, is_unavailable

disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it untyped
log = structlog.get_logger("pushgate.metrics")

# Seconds a backlog reading is served before the database is asked again: cheap for any number
# of scrapers, fresh enough for alerts that wait minutes.
BACKLOG_TTL = 5.0
# Attempt durations: vendor APIs answer in tens to hundreds of milliseconds; the default
# PUSHGATE_REQUEST_TIMEOUT is 10 s.
ATTEMPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# pushgate's own answers: most in milliseconds, an ingest batch or a validation in seconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ATTEMPTS = Counter(
    "pushgate_delivery_attempts",
    "Delivery attempts by integration and outcome (success, retry, failed, skipped).",
    ["integration", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "pushgate_delivery_attempt_duration_seconds",
    "How long delivery attempts took (rendering, credentials, request, answer), by integration "
    "and outcome.",
    ["integration", "outcome"],
    buckets=ATTEMPT_BUCKETS,
)
GIVEN_UP = Counter(
    "pushgate_deliveries_given_up",
    "Deliveries given up (retries used up, or refused for good), by integration.",
    ["integration"],
)
EVENTS = Counter("pushgate_events_accepted", "Events accepted (new ids) by POST /api/v2/events.")
HTTP_REQUESTS = Counter(
    "pushgate_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "pushgate_http_request_duration_seconds",
    "How long HTTP requests took to answer, by method, route template and status.",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)


def attempted(integration: str, outcome: str, seconds: float) -> None:
    """Count one delivery attempt and its duration."""
    count, duration = _attempt_series(integration, outcome)
    count.inc()
    duration.observe(seconds)


@functools.cache  # a label lookup per attempt shows in profiles of the worker
def _attempt_series(integration: str, outcome: str) -> tuple[Any, Any]:
    return ATTEMPTS.labels(integration, outcome), ATTEMPT_SECONDS.labels(integration, outcome)


class Gauges:
    """The backlog gauges of one runtime, from the database, cached `ttl` seconds.

    `read` is the store's `backlog.measure`; `integrations` are reported even when nothing of
    theirs is pending (0), so that an alert on them has a series to look at. When the database
    cannot be read, a scrape has no backlog gauges at all (rather than stale ones).
    """

    def __init__(
        self,
        read: Callable[[], Awaitable[Backlog]],
        *,
        integrations: Iterable[str],
        clock: Clock,
        outage: Outage,
        ttl: float = BACKLOG_TTL,
    ) -> None:
        self._read = read
        self._integrations = sorted(integrations)
        self._clock = clock
        self._outage = outage
        self._ttl = ttl
        self._backlog: Backlog | None = None
        self._read_at = -ttl
        self._lock = asyncio.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    async def refresh(self) -> None:
        """Read the backlog unless the last reading is younger than the ttl."""
        async with self._lock:
            if time.monotonic() - self._read_at < self._ttl:
                return
            try:
                self._backlog = await self._read()
            except Exception as error:
                self._backlog = None
                if not is_unavailable(error):
                    raise
                self._outage.failed(describe(error), reading="metrics")
            else:
                self._outage.succeeded()
            self._read_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        """The gauges of the last reading (prometheus-client's collector protocol)."""
        backlog = self._backlog
        if backlog is None:
            return
        pending = GaugeMetricFamily(
            "pushgate_deliveries_pending",
            "Deliveries waiting to be sent, held while a configuration is paused or off, or "
            "in flight, by integration.",
            labels=["integration"],
        )
        for key in sorted({*self._integrations, *backlog.pending}):
            pending.add_metric([key], backlog.pending.get(key, 0))
        yield pending
        oldest = backlog.oldest_pending_at
        age = max(self._clock() - oldest, 0) / 1000 if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "pushgate_delivery_oldest_pending_seconds",
            "Age of the oldest pending delivery of a configuration that is on (0: none).",
            value=age,
        )
        states = Tally(health_state(c.on, c.breaker) for c in backlog.configurations)
        configurations = GaugeMetricFamily(
            "pushgate_configurations",
            "Configurations by health state (healthy, failing, paused, off), as in _health.",
            labels=["state"],
        )
        for state in HealthState:
            configurations.add_metric([state.value], states[state])
        yield configurations


async def exposition(gauges: Gauges) -> bytes:
    """The Prometheus text of this process: its counters, histograms and process metrics,
    and the backlog gauges."""
    try:
        await gauges.refresh()
    except Exception as error:  # the counters are worth answering with all the same
        log.error("metrics.backlog_failed", exc_info=error)
    return generate_latest(REGISTRY) + generate_latest(gauges.registry)
