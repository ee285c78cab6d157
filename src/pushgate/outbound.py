"""The outbound address policy: which addresses pushgate may send requests to. Pure.

By default only globally reachable unicast addresses; an operator opens private networks with
`PUSHGATE_OUTBOUND_ALLOW`. The judgement is pushgate's own, from the IANA special-purpose
registries (`REFUSED`), not Python's `is_global` alone, whose answer changes between Python
releases (3.11 calls `192.0.0.8` and `::127.0.0.1` global).

    literal_address(host)   every way a URL can spell an address, normalized: dotted quad,
                            decimal (2130706433), short (127.1), octal (0177.0.0.1,
                            017700000001), hex (0x7f000001), full-width digits (IDNA),
                            a trailing dot, IPv6 in brackets with a zone
    OutboundPolicy.refusal  why an address is refused, or None: the IPv4 address inside
                            IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 (64:ff9b::/96),
                            6to4 (2002::/16) and Teredo (2001::/32) addresses is judged too

The transport applies the policy to literal hosts before connecting and to names after they
resolve (inside the connector); configurations apply it to literal hosts when they are saved.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Blocks of the IANA IPv4 and IPv6 special-purpose address registries that are not globally
# reachable, with what they are. Translation prefixes are judged by the IPv4 address inside.
REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), why)
    for network, why in (
        ("0.0.0.0/8", "this-network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001:2::/48", "benchmarking"),
        ("2001:10::/28", "deprecated ORCHID"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# IPv6 prefixes whose last 32 bits are an IPv4 address the packet ends up at.
_IPV4_IN_LOW_BITS = tuple(
    ipaddress.ip_network(network)
    for network in ("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# One part of an IPv4 address as inet_aton reads it: hex, octal (leading 0) or decimal.
_LOOSE_IPV4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}", re.I)
_IPV4_MAX = 2**32 - 1


class InvalidHost(ValueError):
    """A host that is neither a valid name nor a valid address (e.g. `[not-ipv6]`)."""


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells, in any form a resolver or URL parser would accept; None when
    it is a name (to be judged after resolution). `InvalidHost` when it is neither."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text.isascii():
        try:  # IDNA maps full-width digits and ideographic full stops to ASCII.
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidHost(f"{host!r} is not a valid host name") from None
    text = text.removesuffix(".")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            raise InvalidHost(f"{host!r} is not a valid IPv6 address") from None
    if _LOOSE_IPV4.fullmatch(text):
        return _inet_aton(text)
    return None


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """BSD `inet_aton`: 1 to 4 parts, the last filling the remaining bytes; None if invalid."""
    parts = []
    for part in text.split("."):
        lowered = part.lower()
        if lowered.startswith("0x"):
            parts.append(int(lowered[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None  # not an address to inet_aton: a resolver would look it up
            parts.append(int(part, 8))
        else:
            parts.append(int(part))
    *leading, last = parts
    if any(value > 255 for value in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = last
    for index, byte in enumerate(leading):
        value |= byte << (8 * (3 - index))
    return ipaddress.IPv4Address(value) if value <= _IPV4_MAX else None


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and that its packets end up at."""
    found = []
    if any(address in prefix for prefix in _IPV4_IN_LOW_BITS):
        found.append(ipaddress.IPv4Address(int(address) & _IPV4_MAX))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)  # server and client
    return found


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which addresses outbound requests may reach: global unicast, plus `allow`."""

    allow: tuple[IPNetwork, ...] = ()

    def permits(self, address: IPAddress) -> bool:
        """Whether a request may connect to `address`."""
        return self.refusal(address) is None

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` is refused (e.g. `"loopback"`), or None when it is permitted."""
        if any(address.version == net.version and address in net for net in self.allow):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            return self._refusal_v6(address)
        for network, why in REFUSED:
            if address.version == network.version and address in network:
                return why
        return None if address.is_global else "not globally reachable"

    def _refusal_v6(self, address: ipaddress.IPv6Address) -> str | None:
        inner = embedded_ipv4(address)
        if any(address in prefix for prefix in _IPV4_IN_LOW_BITS):
            why = self.refusal(inner[0])
            return None if why is None else f"{why}, as the IPv4 address {inner[0]} inside it"
        if address in _IPV4_COMPATIBLE and int(address) > 1:
            return f"deprecated IPv4-compatible form of {ipaddress.IPv4Address(int(address))}"
        for ipv4 in inner:  # 6to4, Teredo: the tunnel ends at the IPv4 address inside
            why = self.refusal(ipv4)
            if why is not None:
                return f"{why}, as the IPv4 address {ipv4} inside it"
        for network, why in REFUSED:
            if network.version == 6 and address in network:
                return why
        if address not in _GLOBAL_UNICAST_V6 or not address.is_global:
            return "not globally reachable"
        return None

    def host_problem(self, host: str) -> str | None:
        """Why a URL with this literal host may not be requested, or None (a permitted
        address, or a name, which is judged after it resolves)."""
        try:
            address = literal_address(host)
        except InvalidHost as error:
            return str(error)
        if address is None:
            return None
        why = self.refusal(address)
        if why is None:
            return None
        named = host if host.strip("[]") == str(address) else f"{host} (the address {address})"
        return f"{named} is refused by the outbound policy: {why}"
