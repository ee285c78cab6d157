"""Prometheus metrics, exposed at /metrics."""

from __future__ import annotations

from prometheus_client import Counter

ATTEMPTS = Counter(
    "pushgate_delivery_attempts",
    "Delivery attempts by integration and outcome (success, retry, failed, skipped).",
    ["integration", "outcome"],
)
EVENTS = Counter("pushgate_events_accepted", "Events accepted (new ids) by POST /api/v2/events.")
