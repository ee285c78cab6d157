"""Fixtures for adapter tests: a local server impersonating a vendor, and one-shot attempts.

Each integration's test module builds an aiohttp `web.Application` that enforces the vendor's
documented contract (method, path, auth header, required fields, answers) and sends events to
it through the real engine and transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from conftest import free_port
from pushgate.delivery.engine import Engine
from pushgate.delivery.transport import Transport
from pushgate.errors import DeliveryError
from pushgate.events import parse_entry, validation_entry
from pushgate.integrations.base import Endpoints, Integration
from pushgate.settings import Settings

VendorFactory = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def vendor() -> AsyncIterator[VendorFactory]:
    """Start an aiohttp application on 127.0.0.1; returns its base URL (http://127.0.0.1:port)."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


class Attempt:
    """Sends one event through the real engine and transport to a local vendor."""

    def __init__(self, integration: Integration[Any], overrides: dict[str, str] | None = None):
        settings = Settings(
            outbound_allow="127.0.0.0/8",
            endpoint_overrides=overrides or {},
            request_timeout=2,
            admin_token=None,
        )
        self.integration = integration
        self.engine = Engine(Transport(settings), Endpoints(settings.endpoint_overrides))

    async def send(self, config: dict[str, Any], entry: dict[str, Any]) -> DeliveryError | None:
        """Validate `config` with the integration's model, then attempt `entry` once."""
        model = self.integration.parse_config(config)
        payload = parse_entry(entry, now_ms=1_700_000_000_000)
        try:
            return await self.engine.attempt(self.integration, model, payload)
        finally:
            await self.engine.transport.close()

    async def validate(self, config: dict[str, Any]) -> DeliveryError | None:
        """Attempt the validation event."""
        return await self.send(config, validation_entry(1_700_000_000_000))


PROJECT_EVENT = {
    "_id": "p1",
    "date": 1_700_000_000_000,
    "kind": "project",
    "name": "Web shop",
    "accesses": [{"action": "updateName", "resource": "proj/web"}],
    "titleVerb": "renamed the project",
    "member": {"email": "bo@example.com", "firstName": "Bo"},
}

FLAG_EVENT = {
    "_id": "f1",
    "date": 1_700_000_000_000,
    "kind": "flag",
    "name": "New checkout",
    "accesses": [{"action": "updateOn", "resource": "proj/web:env/production:flag/new-checkout"}],
    "title": (
        "[Ana Lopez](mailto:ana@example.com) turned on the flag "
        "[New checkout](https://app.example.com/web/production/features/new-checkout) "
        "in `Production`"
    ),
    "titleVerb": "turned on the flag",
    "comment": "Rolling out to everyone",
    "member": {"email": "ana@example.com", "firstName": "Ana", "lastName": "Lopez"},
    "_links": {"site": {"href": "https://app.example.com/web/production/features/new-checkout"}},
    "project": {"key": "web", "name": "Web shop"},
    "environment": {"key": "production", "name": "Production"},
}
