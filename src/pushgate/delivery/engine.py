"""One attempt of one delivery: build the request, send it, judge the answer.

Shared by the worker and by validation, so a test event travels exactly the road real events
travel. When the integration needs credentials fetched first (`Integration.credentials`), their
headers are added to the request; a 401 answer to a request that carried such headers gets one
resend with freshly fetched credentials.

Secrets never leave an attempt: every answer is masked (`masking.Redactor`: every encoding of
the configuration's secrets and of the credentials fetched for it, and the beginning of one at
the end of a body cut at the size limit) before the adapter reads it, so nothing an adapter
derives from it (descriptions, clipped excerpts) can hold a secret; the failure is masked once
more before it is returned.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
import traceback
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import structlog

from pushgate.delivery.transport import Transport
from pushgate.errors import DeliveryError, DeliverySkipped, PermanentDeliveryError
from pushgate.events import EventContext, StoredEntry, build_context
from pushgate.integrations.base import (
    Endpoints,
    InboundResponse,
    Integration,
    IntegrationConfig,
    OutboundRequest,
    Send,
)
from pushgate.masking import Redactor, redactor
from pushgate.values import value_class

log = structlog.get_logger("pushgate.delivery")
# The answer that makes fetched credentials count as refused.
UNAUTHORIZED = 401
# Contexts kept for events sent recently (a claim holds a few hundred deliveries at most).
RECENT_CONTEXTS = 512


@value_class
class Attempt:
    """What one attempt did: its failure (None: it succeeded), the host it went to (host and
    port only: a path or query may carry credentials; None when nothing was sent) and how
    long it took, in seconds."""

    failure: DeliveryError | None
    host: str | None
    seconds: float
    response: InboundResponse | None = None  # masked; validation reports it on success
    request: OutboundRequest | None = None  # as built (unmasked): the attempt log masks it


class Engine:
    """Renders and sends events through one transport."""

    def __init__(
        self, transport: Transport, endpoints: Endpoints, *, link_base_url: str | None = None
    ) -> None:
        self.transport = transport
        self.endpoints = endpoints
        self._link_base_url = link_base_url
        # Contexts of the events most recently sent: an event that goes to many configurations
        # (fan-out) is read once. An event's entry never changes once stored.
        self._contexts: collections.OrderedDict[str, EventContext] = collections.OrderedDict()

    def context(self, payload: Mapping[str, Any]) -> EventContext:
        """The template context of an entry, built once per event id while recent."""
        event_id = payload.event_id if isinstance(payload, StoredEntry) else payload.get("_id")
        if not isinstance(event_id, str):
            return build_context(payload, link_base_url=self._link_base_url)
        found = self._contexts.get(event_id)
        if found is None:
            found = build_context(payload, link_base_url=self._link_base_url)
            self._contexts[event_id] = found
            if len(self._contexts) > RECENT_CONTEXTS:
                self._contexts.popitem(last=False)
        return found

    async def attempt(
        self,
        integration: Integration[Any],
        config: IntegrationConfig,
        payload: Mapping[str, Any],
        *,
        secrets: tuple[str, ...] | None = None,
    ) -> DeliveryError | None:
        """Send `payload` (an audit-log entry) once; None on success, else the failure.

        "Once" allows one resend when fetched credentials were refused (401) and renewed.
        `secrets` are the config's secret values, when the caller has them already.
        Raises `DeliverySkipped` when the adapter decided this event is not to be sent.
        """
        return (await self.run(integration, config, payload, secrets=secrets)).failure

    async def run(
        self,
        integration: Integration[Any],
        config: IntegrationConfig,
        payload: Mapping[str, Any],
        *,
        secrets: tuple[str, ...] | None = None,
    ) -> Attempt:
        """`attempt`, with the receiver's answer (masked), where the request went and how long
        it took."""
        started = time.perf_counter()
        if secrets is None:
            secrets = tuple(integration.secret_values(config))
        extra: Mapping[str, str] = {}
        host: str | None = None
        response: InboundResponse | None = None
        request: OutboundRequest | None = None

        def done(failure: DeliveryError | None) -> Attempt:
            return Attempt(failure, host, time.perf_counter() - started, response, request)

        try:
            context = self.context(payload)
            request = integration.build_request(context, config, self.endpoints)
            host = target_host(request.url)
            if _fetches_credentials(type(integration)):
                send = _masking(self.transport.send, redactor(secrets))
                extra = await integration.credentials(config, self.endpoints, send, refresh=False)
                response = await self._send(request, extra, secrets)
                if response.status == UNAUTHORIZED and extra:
                    extra = await integration.credentials(
                        config, self.endpoints, send, refresh=True
                    )
                    response = await self._send(request, extra, secrets)
            else:  # most integrations: straight to the transport, one call and await fewer
                response = _masked(await self.transport.send(request), redactor(secrets))
            integration.classify(response)
        except DeliveryError as error:
            return done(_redacted(error, _redactor(secrets, extra)))
        except DeliverySkipped:
            raise
        except Exception as error:
            # A bug in an adapter must not stall the queue or crash the worker: log it with its
            # traceback, and record the attempt as a permanent failure.
            mask = _redactor(secrets, extra)
            log.error(
                "delivery.adapter_error",
                integration=integration.key,
                traceback=mask.mask("".join(traceback.format_exception(error))),
            )
            failure = PermanentDeliveryError(f"pushgate could not process this event: {error!r}")
            return done(_redacted(failure, mask))
        return done(None)

    async def _send(
        self, request: OutboundRequest, extra: Mapping[str, str], secrets: tuple[str, ...]
    ) -> InboundResponse:
        response = await self.transport.send(_with_headers(request, extra))
        return _masked(response, _redactor(secrets, extra))


@functools.lru_cache(maxsize=4096)  # deliveries repeat a few URLs; parsing shows in profiles
def target_host(url: str) -> str:
    """`host` or `host:port` of `url`: never its user, password, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host


@functools.cache
def _fetches_credentials(kind: type[Integration[Any]]) -> bool:
    """True when the integration overrides `credentials` (the default fetches nothing)."""
    return kind.credentials is not Integration.credentials


def _redactor(secrets: tuple[str, ...], extra: Mapping[str, str]) -> Redactor:
    """The configuration's secrets and the fetched credentials, whole and after their scheme
    (`Bearer <token>`: the token alone may come back too)."""
    if not extra:
        return redactor(secrets)
    derived = [part for value in extra.values() for part in (value, value.partition(" ")[2])]
    return redactor(secrets + tuple(part for part in derived if part))


def _masking(send: Send, mask: Redactor) -> Send:
    """`send` whose answers come back masked (for the requests `credentials` makes)."""

    async def masked_send(request: OutboundRequest) -> InboundResponse:
        return _masked(await send(request), mask)

    return masked_send


def _masked(response: InboundResponse, mask: Redactor) -> InboundResponse:
    if not mask:
        return response
    text = response.text()
    masked = mask.mask(text, cut=response.truncated)
    return response if masked == text else dataclasses.replace(response, body=masked.encode())


def _redacted(error: DeliveryError, mask: Redactor) -> DeliveryError:
    """Mask what the error log and the validation answer show of a failure."""
    error.description = mask.mask(error.description)
    if error.response_body is not None:
        error.response_body = mask.mask(error.response_body)
    if error.hint is not None:
        error.hint = mask.mask(error.hint)
    return error


def _with_headers(request: OutboundRequest, extra: Mapping[str, str]) -> OutboundRequest:
    if not extra:
        return request
    return dataclasses.replace(request, headers={**request.headers, **extra})
