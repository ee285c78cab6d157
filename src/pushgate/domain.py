"""The domain's named states, shared by every layer (the store persists them as their values).

DeliveryState   where a delivery is in its life
Role            what an access token may do
HealthState     how a configuration's deliveries are going (`_health.state`)
SourceKind      how an event source's senders sign what they post
"""

from __future__ import annotations

import enum


class DeliveryState(enum.StrEnum):
    """Where a delivery is in its life."""

    PENDING = "pending"  # waiting for its due time, leased to a worker, or held
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # given up: permanent failure or retries exhausted
    CANCELLED = "cancelled"  # not sent: its configuration was turned off by a user
    SKIPPED = "skipped"  # not sent on purpose: the integration has nothing to send for it


class Role(enum.StrEnum):
    """What a token may do: each role includes the ones before it."""

    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """True when this role may do what `needed` may."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


# The reason a configuration's health gives when a user turned it off.
TURNED_OFF = "turned off"


class HealthState(enum.StrEnum):
    """How a configuration's deliveries are going, as `_health.state` and the UI show it."""

    HEALTHY = "healthy"  # the last attempt succeeded (or none failed yet)
    FAILING = "failing"  # recent attempts failed; the breaker is still closed
    PAUSED = "paused"  # the breaker is open, or the receiver asked to wait
    OFF = "off"  # turned off, by a user or by the receiver (410 Gone)


class SourceKind(enum.StrEnum):
    """How the sender of an event source signs its requests (`sources.py` verifies them)."""

    LAUNCHDARKLY_WEBHOOK = "launchdarkly-webhook"  # X-LD-Signature: hex HMAC-SHA256 of the body
    STANDARD_WEBHOOKS = "standard-webhooks"  # webhook-id, -timestamp, -signature (v1)
