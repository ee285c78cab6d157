"""The one HTTP client of pushgate: pooled, time-limited, no redirects, capped bodies, SSRF-guarded.

Deliveries and validation both send through `Transport.send`; nothing else builds an HTTP
client. Every address a request would connect to is checked against the `OutboundPolicy`
(`outbound.py`): by default only globally routable addresses, plus the CIDRs of
`PUSHGATE_OUTBOUND_ALLOW`. A literal host, in whatever form it is spelled, is normalized and
judged before anything is sent; names are checked after resolution, inside the connector, so a
name cannot resolve to a safe address for the check and to a private one for the connection.
Error descriptions name the host, never the rest of the URL (it may carry a credential).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from pushgate.errors import BlockedTarget, TransportError
from pushgate.integrations.base import InboundResponse, OutboundRequest
from pushgate.outbound import OutboundPolicy
from pushgate.settings import Settings

# Connections kept per worker; matches the largest sensible worker concurrency.
POOL_LIMIT = 512


class BlockedAddress(OSError):
    """Raised inside the connector when every resolved address is refused."""


class _GuardedResolver(AbstractResolver):
    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [
            r
            for r in results
            if self._policy.permits(ipaddress.ip_address(r["host"].split("%")[0]))
        ]
        if not allowed:
            found = ", ".join(sorted({r["host"] for r in results}))
            raise BlockedAddress(f"{host} resolves to {found}, which the outbound policy refuses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


# URLs whose judgement a transport keeps (a few per configuration).
JUDGED_URLS = 4096


class Transport:
    """Sends `OutboundRequest`s over one pooled aiohttp session."""

    def __init__(self, settings: Settings) -> None:
        self._policy = OutboundPolicy(settings.outbound_allow)
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        self._body_limit = settings.response_body_limit
        self._session: aiohttp.ClientSession | None = None
        # The guard's judgement of each URL seen: deliveries repeat the same few URLs, and
        # parsing them each time shows in profiles. Bounded: cleared when full.
        self._judged: dict[str, str | None] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=POOL_LIMIT, resolver=_GuardedResolver(self._policy), ttl_dns_cache=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=True
            )
        return self._session

    async def close(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: OutboundRequest) -> InboundResponse:
        """Send one request. Raises `TransportError` (no answer) or `BlockedTarget` (refused)."""
        self.check_url(request.url)
        options: dict[str, Any] = {"allow_redirects": False}
        if not request.verify_tls:
            options["ssl"] = False
        try:
            async with self._client().request(
                request.method,
                request.url,
                headers=request.headers,  # aiohttp copies them
                data=request.body or None,
                params=list(request.params) if request.params else None,
                **options,
            ) as response:
                body = await response.content.read(self._body_limit + 1)
                truncated = len(body) > self._body_limit
                return InboundResponse(
                    status=response.status,
                    headers=response.headers,  # case-insensitive, as HTTP headers are
                    body=body[: self._body_limit],
                    truncated=truncated,
                )
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, BlockedAddress):
                raise BlockedTarget(str(error.os_error), hint=_BLOCKED_HINT) from None
            raise TransportError(_describe(error), hint=_connect_hint(error)) from None
        except TimeoutError:
            raise TransportError(
                f"timed out after {self._timeout.total:g}s",
                hint="The receiver did not answer in time (PUSHGATE_REQUEST_TIMEOUT).",
            ) from None
        except (aiohttp.ClientError, ssl.SSLError, asyncio.IncompleteReadError) as error:
            raise TransportError(_describe(error)) from None

    def check_url(self, url: str) -> None:
        """The guard's judgement of a URL before anything is sent: `BlockedTarget` when its
        host is a literal address the policy refuses, or no valid host at all."""
        try:
            problem = self._judged[url]
        except KeyError:
            if len(self._judged) >= JUDGED_URLS:
                self._judged.clear()
            problem = self._judged[url] = _literal_problem(self._policy, url)
        if problem is not None:
            raise BlockedTarget(problem, hint=_BLOCKED_HINT)


def _literal_problem(policy: OutboundPolicy, url: str) -> str | None:
    """Why `url` may not be requested, judged before any connection; None when it may."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return "the URL is not valid"
    if not host:
        return "the URL has no host"
    return policy.host_problem(host)


_BLOCKED_HINT = (
    "Outbound requests to private networks are refused; an operator can allow a network "
    "with PUSHGATE_OUTBOUND_ALLOW."
)


def _describe(error: BaseException) -> str:
    """The error's kind and message, without the URL that some of aiohttp's carry."""
    kind = type(error).__name__
    if isinstance(error, aiohttp.InvalidURL):
        return f"{kind}: the URL is not valid"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{kind}: {error.status}, {error.message}"
    text = str(error).strip()
    return f"{kind}: {text}" if text else kind


def _connect_hint(error: aiohttp.ClientConnectorError) -> str:
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "The host name did not resolve: check the URL."
    if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "TLS failed: check the certificate of the receiver."
    return "Could not connect: check the URL and that the receiver is up."
