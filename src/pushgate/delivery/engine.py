"""One attempt of one delivery: build the request, send it, judge the answer.

Shared by the worker and by validation, so a test event travels exactly the road real events
travel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushgate.delivery.transport import Transport
from pushgate.errors import DeliveryError, PermanentDeliveryError
from pushgate.events import build_context
from pushgate.integrations.base import SECRET_MASK, Endpoints, Integration, IntegrationConfig


class Engine:
    """Renders and sends events through one transport."""

    def __init__(
        self, transport: Transport, endpoints: Endpoints, *, link_base_url: str | None = None
    ) -> None:
        self.transport = transport
        self.endpoints = endpoints
        self._link_base_url = link_base_url

    async def attempt(
        self,
        integration: Integration[Any],
        config: IntegrationConfig,
        payload: Mapping[str, Any],
    ) -> DeliveryError | None:
        """Send `payload` (an audit-log entry) once; None on success, else the failure."""
        try:
            context = build_context(payload, link_base_url=self._link_base_url)
            request = integration.build_request(context, config, self.endpoints)
        except (ValueError, TypeError, KeyError) as error:
            # A bug or an unusable config must not stall the queue: record it and move on.
            return PermanentDeliveryError(f"could not build the request: {error}")
        try:
            response = await self.transport.send(request)
            integration.classify(response)
        except DeliveryError as error:
            return _redacted(error, integration.secret_values(config))
        return None


def _redacted(error: DeliveryError, secrets: list[str]) -> DeliveryError:
    """Mask secrets a receiver echoed back (some echo the request's headers in errors)."""
    for secret in secrets:
        if error.response_body and secret in error.response_body:
            error.response_body = error.response_body.replace(secret, SECRET_MASK)
        if secret in error.description:
            error.description = error.description.replace(secret, SECRET_MASK)
    return error
