"""The outbound guard: every spelling of an address normalized, embedded IPv4 judged, refused
by pushgate's own policy before a packet is sent, and refused when a configuration is saved."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from conftest import Server, free_port
from pushgate.delivery.transport import Transport
from pushgate.errors import BlockedTarget
from pushgate.integrations.base import OutboundRequest
from pushgate.outbound import OutboundPolicy, literal_address
from pushgate.settings import Settings


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("１２７.０.０.１", "127.0.0.1"),  # full-width digits, IDNA-mapped  # noqa: RUF001
        ("0", "0.0.0.0"),  # noqa: S104 - an address under test, not a bind
        ("[::1]", "::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("example.com", None),
        ("08.1.2.3", None),  # not octal: a resolver would look it up as a name
        ("256.1.1.1", None),
        ("1.2.3.4.5", None),
    ],
)
def test_every_spelling_of_an_address_is_normalized(host: str, address: str | None) -> None:
    found = literal_address(host)
    assert (str(found) if found is not None else None) == address


@pytest.mark.parametrize(
    ("address", "refused_as"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("64:ff9b::808:808", None),  # NAT64 of a public address (IPv6-only networks need it)
        ("2002:808:808::1", None),  # 6to4 of a public address
        ("::ffff:8.8.8.8", None),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "this-network"),  # noqa: S104 - an address under test, not a bind
        ("192.0.0.8", "IETF protocol assignments"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fd00::1", "unique-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("::ffff:127.0.0.1", "loopback, as the IPv4 address 127.0.0.1"),
        ("::ffff:0:a9fe:a9fe", "link-local"),  # IPv4-translated
        ("::127.0.0.1", "IPv4-compatible"),
        ("::a9fe:a9fe", "IPv4-compatible"),
        ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata), as the IPv4 address 169.254.169.254"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b:1::a00:1", "local-use NAT64"),
        ("2002:a9fe:a9fe::1", "link-local (cloud metadata), as the IPv4 address 169.254.169.254"),
        ("2002:7f00:1::1", "loopback"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "documentation"),  # Teredo to 192.0.2.45
        ("2001:0:a9fe:a9fe::1", "link-local"),  # Teredo via a link-local server
    ],
)
def test_default_policy_refuses_every_address_that_is_not_global(
    address: str, refused_as: str | None
) -> None:
    why = OutboundPolicy().refusal(ipaddress.ip_address(address))
    if refused_as is None:
        assert why is None
    else:
        assert why is not None
        assert refused_as in why


def test_the_allow_list_opens_a_network_in_every_form() -> None:
    policy = OutboundPolicy((ipaddress.ip_network("127.0.0.0/8"),))
    assert policy.permits(ipaddress.ip_address("127.0.0.1"))
    assert policy.permits(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert policy.host_problem("2130706433") is None
    assert not policy.permits(ipaddress.ip_address("10.0.0.1"))


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433:{port}/",
        "http://127.1:{port}/",
        "http://017700000001:{port}/",
        "http://0x7f000001:{port}/",
        "http://127.0.0.1.:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://127.0.0.1:{port}/",
    ],
)
async def test_the_guard_refuses_loopback_in_any_spelling_and_sends_nothing(url: str) -> None:
    connections = 0

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    port = free_port()
    listener = await asyncio.start_server(accept, "127.0.0.1", port)
    transport = Transport(Settings(outbound_allow=""))
    try:
        with pytest.raises(BlockedTarget, match="refused by the outbound policy: loopback"):
            await transport.send(OutboundRequest("POST", url.format(port=port), {}, b"{}"))
    finally:
        await transport.close()
        listener.close()
        await listener.wait_closed()
    assert connections == 0  # not one packet reached the listener


@pytest.mark.parametrize(
    "url",
    [
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "http://[2002:a9fe:a9fe::1]/",
        "http://192.0.0.8/",
        "http://0251.0376.0251.0376/",  # 169.254.169.254 in octal
        "http://[fe80::1%25eth0]/",
        "http://[not-an-address]/",
    ],
)
def test_the_guard_itself_refuses_before_connecting(url: str) -> None:
    # `check_url` is what `send` runs first; these addresses are not on this machine, so the
    # refusal is checked here, without any attempt to reach them.
    with pytest.raises(BlockedTarget) as refused:
        Transport(Settings(outbound_allow="")).check_url(url)
    assert "PUSHGATE_OUTBOUND_ALLOW" in (refused.value.hint or "")


@pytest.mark.parametrize(
    ("path", "config", "field"),
    [
        ("webhook", {"url": "http://167772161/"}, "config.url"),  # 10.0.0.1
        ("webhook", {"url": "http://[64:ff9b::a9fe:a9fe]/"}, "config.url"),
        ("msteams", {"url": "https://192.0.0.8/workflows"}, "config.url"),
        (
            "splunk",
            {"base-url": "https://10.0.0.5:8088", "token": "hec-token-1234"},
            "config.base-url",
        ),
        (
            "elastic",
            {"url": "https://[::ffff:169.254.169.254]:9200", "token": "k" * 20, "index": "a"},
            "config.url",
        ),
    ],
)
async def test_a_literal_address_the_policy_refuses_is_refused_when_saved(
    server: Server, path: str, config: dict[str, str], field: str
) -> None:
    status, answer = await server.call(
        "POST", f"/api/v2/integrations/{path}", {"name": "x", "config": config}
    )
    assert status == 400, answer
    assert answer["message"].startswith(f"{field}: ")
    assert "outbound policy" in answer["message"]
    assert await server.runtime.store.configurations.all() == []


async def test_a_name_is_saved_and_judged_when_it_resolves(server: Server) -> None:
    status, answer = await server.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "x", "config": {"url": "http://localhost/"}},
    )
    assert status == 201, answer  # no DNS lookup at save time
