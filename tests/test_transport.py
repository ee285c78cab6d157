"""The transport: no redirects, capped bodies, time limits, and the outbound address policy."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from aiohttp import web

from conftest import free_port
from pushgate.delivery.transport import Transport
from pushgate.errors import BlockedTarget, TransportError
from pushgate.integrations.base import OutboundRequest
from pushgate.outbound import OutboundPolicy
from pushgate.settings import Settings


@pytest.fixture
async def site() -> object:
    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 100_000)

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.Event().wait()  # never answers
        return web.Response(text="late")

    app = web.Application()
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/big", big)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def transport(**overrides: object) -> Transport:
    values: dict[str, object] = {
        "outbound_allow": "127.0.0.0/8",
        "request_timeout": 0.5,
        "response_body_limit": 1024,
    }
    values.update(overrides)
    return Transport(Settings(**values))  # type: ignore[arg-type]


def post(url: str) -> OutboundRequest:
    return OutboundRequest("POST", url, {"Content-Type": "application/json"}, b"{}")


async def test_redirects_are_not_followed(site: str) -> None:
    client = transport()
    response = await client.send(post(f"{site}/redirect"))
    await client.close()
    assert response.status == 302


async def test_response_body_is_capped(site: str) -> None:
    client = transport()
    response = await client.send(post(f"{site}/big"))
    await client.close()
    assert len(response.body) == 1024
    assert response.truncated


async def test_slow_receiver_times_out_as_transport_error(site: str) -> None:
    client = transport()
    with pytest.raises(TransportError, match="timed out"):
        await client.send(post(f"{site}/slow"))
    await client.close()


async def test_loopback_is_refused_without_allow_list(site: str) -> None:
    client = transport(outbound_allow="")
    with pytest.raises(BlockedTarget):
        await client.send(post(f"{site}/big"))
    await client.close()


async def test_names_are_checked_after_resolution(site: str) -> None:
    client = transport(outbound_allow="")
    port = site.rsplit(":", 1)[1]
    with pytest.raises(BlockedTarget, match="localhost resolves to"):
        await client.send(post(f"http://localhost:{port}/big"))
    await client.close()


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - an address under test, not a bind
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
    ],
)
def test_default_policy_allows_only_global_unicast(address: str, allowed: bool) -> None:
    assert OutboundPolicy().permits(ipaddress.ip_address(address)) is allowed


def test_allow_list_opens_a_private_network() -> None:
    policy = OutboundPolicy((ipaddress.ip_network("10.20.0.0/16"),))
    assert policy.permits(ipaddress.ip_address("10.20.3.4"))
    assert not policy.permits(ipaddress.ip_address("10.21.3.4"))


async def test_response_headers_are_case_insensitive() -> None:
    async def lower(_request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"retry-after": "7"})

    app = web.Application()
    app.router.add_post("/", lower)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    client = transport()
    response = await client.send(post(f"http://127.0.0.1:{port}/"))
    await client.close()
    await runner.cleanup()
    assert response.retry_after == 7.0
