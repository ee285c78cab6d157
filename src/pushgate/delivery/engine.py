"""One attempt of one delivery: build the request, send it, judge the answer.

Shared by the worker and by validation, so a test event travels exactly the road real events
travel. When the integration needs credentials fetched first (`Integration.credentials`), their
headers are added to the request; a 401 answer to a request that carried such headers gets one
resend with freshly fetched credentials.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import structlog

from pushgate.delivery.transport import Transport
from pushgate.errors import DeliveryError, DeliverySkipped, PermanentDeliveryError
from pushgate.events import build_context
from pushgate.integrations.base import (
    SECRET_MASK,
    Endpoints,
    Integration,
    IntegrationConfig,
    OutboundRequest,
)

log = structlog.get_logger("pushgate.delivery")
# The answer that makes fetched credentials count as refused.
UNAUTHORIZED = 401


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
        """Send `payload` (an audit-log entry) once; None on success, else the failure.

        "Once" allows one resend when fetched credentials were refused (401) and renewed.
        Raises `DeliverySkipped` when the adapter decided this event is not to be sent.
        """
        try:
            context = build_context(payload, link_base_url=self._link_base_url)
            request = integration.build_request(context, config, self.endpoints)
            send = self.transport.send
            extra = await integration.credentials(config, self.endpoints, send, refresh=False)
            response = await send(_with_headers(request, extra))
            if response.status == UNAUTHORIZED and extra:
                extra = await integration.credentials(config, self.endpoints, send, refresh=True)
                response = await send(_with_headers(request, extra))
            integration.classify(response)
        except DeliveryError as error:
            return _redacted(error, integration.secret_values(config))
        except DeliverySkipped:
            raise
        except Exception as error:
            # A bug in an adapter must not stall the queue or crash the worker: log it with its
            # traceback, and record the attempt as a permanent failure.
            log.exception("delivery.adapter_error", integration=integration.key)
            return PermanentDeliveryError(f"pushgate could not process this event: {error!r}")
        return None


def _redacted(error: DeliveryError, secrets: list[str]) -> DeliveryError:
    """Mask secrets a receiver echoed back (some echo the request's headers in errors)."""
    for secret in secrets:
        if error.response_body and secret in error.response_body:
            error.response_body = error.response_body.replace(secret, SECRET_MASK)
        if secret in error.description:
            error.description = error.description.replace(secret, SECRET_MASK)
    return error


def _with_headers(request: OutboundRequest, extra: Mapping[str, str]) -> OutboundRequest:
    if not extra:
        return request
    return dataclasses.replace(request, headers={**request.headers, **extra})
