"""Slowing down failed sign-ins, per client address: the UI's sign-in form and API tokens.

Each address gets `FREE_FAILURES` wrong tokens for nothing. After that, every failure makes the
address wait before its next attempt is even checked: 1 s, then 2, 4, 8 … at most
`MAX_DELAY`. An attempt during the wait is refused (`RateLimited`, 429 with `Retry-After`)
without looking at the token, so a guess costs the whole wait. A correct token clears the
address; failures are forgotten `FORGET_AFTER` after the last one.

Why the real admin is not locked out: the count is per address, so an attacker slows down only
the address he sends from. The admin at any other address is never delayed, and a browser that
is signed in is never throttled (its session is not a guess). Behind a reverse proxy, every
client has the proxy's address unless `PUSHGATE_TRUSTED_PROXIES` names the proxy, which makes
`pushgate serve` take the client address from `X-Forwarded-For` (see docs/security.md). Someone
sharing the attacker's address waits at most `MAX_DELAY`. IPv6 addresses are counted per /64,
the smallest block one subscriber holds, so hopping addresses inside it does not help. The
table keeps at most `MAX_ADDRESSES` addresses (the longest quiet dropped first), so spraying
addresses cannot grow memory. Each process counts on its own; time comes from the injected
clock.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

from pushgate.clock import Clock
from pushgate.errors import RateLimited

# A person mistyping a token a few times is never slowed down.
FREE_FAILURES = 5
# The first wait, doubled by every further failure, up to the longest.
FIRST_DELAY_MS = 1_000
MAX_DELAY_MS = 60_000
# Quiet this long, an address starts afresh.
FORGET_AFTER_MS = 15 * 60_000
# Addresses remembered at once: a few MB at most.
MAX_ADDRESSES = 10_000
# The block one IPv6 subscriber is given, counted as one address.
IPV6_PREFIX = 64


@dataclass(slots=True)
class _Failures:
    count: int
    last_ms: int
    next_attempt_ms: int


class Throttle:
    """Failed sign-in attempts per client address, and the waits they impose."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()

    def check(self, client: str) -> None:
        """Raise `RateLimited` while `client` must wait; return when it may try."""
        failures = self._current(_key(client))
        now = self._clock()
        if failures is not None and now < failures.next_attempt_ms:
            wait = math.ceil((failures.next_attempt_ms - now) / 1000)
            raise RateLimited(
                f"too many failed sign-ins from your address: try again in {wait} s",
                retry_after=wait,
            )

    def failed(self, client: str) -> None:
        """Count a wrong token from `client`."""
        key = _key(client)
        now = self._clock()
        failures = self._current(key) or _Failures(0, now, now)
        failures.count += 1
        failures.last_ms = now
        beyond = failures.count - FREE_FAILURES
        if beyond > 0:
            failures.next_attempt_ms = now + min(
                FIRST_DELAY_MS << min(beyond - 1, 16), MAX_DELAY_MS
            )
        self._by_address[key] = failures
        self._by_address.move_to_end(key)
        while len(self._by_address) > MAX_ADDRESSES:
            self._by_address.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """A correct token from `client`: its failures are forgotten."""
        self._by_address.pop(_key(client), None)

    def _current(self, key: str) -> _Failures | None:
        failures = self._by_address.get(key)
        if failures is not None and self._clock() - failures.last_ms >= FORGET_AFTER_MS:
            del self._by_address[key]
            return None
        return failures


@functools.lru_cache(maxsize=4096)  # parsed once per client address, not once per request
def _key(client: str) -> str:
    """The address failures are counted for: the address itself, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client  # not an address (a Unix socket, a test client): counted as given
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)
