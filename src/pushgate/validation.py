"""Validate connection: send the test event through the real adapter and transport, now.

It reports what happened (on success too: the status code and the body the tool answered,
masked like every answer) and changes no status counter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pushgate.clock import Clock
from pushgate.delivery.engine import Engine
from pushgate.errors import DeliverySkipped
from pushgate.events import validation_entry
from pushgate.integrations.base import Integration, IntegrationConfig

SKIPPED_HINT = (
    "The integration chose not to send the test event, so the connection was not tried; a "
    "manifest integration needs a validation template that renders a body."
)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The answer of a validation: success, or what failed and a hint."""

    ok: bool
    duration_ms: int
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """`{"ok", "statusCode", "responseBody", "error", "hint", "durationMs"}`, absent omitted."""
        out: dict[str, Any] = {"ok": self.ok, "durationMs": self.duration_ms}
        for key, value in (
            ("statusCode", self.status_code),
            ("responseBody", self.response_body),
            ("error", self.error),
            ("hint", self.hint),
        ):
            if value is not None:
                out[key] = value
        return out


async def validate(
    engine: Engine, integration: Integration[Any], config: IntegrationConfig, clock: Clock
) -> ValidationReport:
    """Send the integration's test event once, synchronously, and report the outcome."""
    started = time.perf_counter()
    try:
        attempted = await engine.run(integration, config, validation_entry(clock()))
    except DeliverySkipped as skip:
        return ValidationReport(
            ok=False,
            duration_ms=round((time.perf_counter() - started) * 1000),
            error=f"Nothing was sent: {skip.reason}.",
            hint=SKIPPED_HINT,
        )
    duration_ms = round((time.perf_counter() - started) * 1000)
    failure, response = attempted.failure, attempted.response
    if failure is None:
        return ValidationReport(
            ok=True,
            duration_ms=duration_ms,
            status_code=response.status if response is not None else None,
            response_body=response.text() if response is not None else None,
        )
    return ValidationReport(
        ok=False,
        duration_ms=duration_ms,
        status_code=failure.status_code,
        response_body=failure.response_body,
        error=failure.description,
        hint=failure.hint,
    )
