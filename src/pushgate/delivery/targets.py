"""The worker's configuration cache: each configuration opened once per version.

A claim returns each delivery's configuration version; a configuration is read and its secrets
opened again only when that version is new to this worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from pushgate.configurations import Services, open_config
from pushgate.errors import NotFound
from pushgate.integrations.base import Integration, IntegrationConfig
from pushgate.store import Claimed

log = structlog.get_logger("pushgate.delivery")


@dataclass(frozen=True, slots=True)
class Target:
    """A configuration as the worker sends to it."""

    version: int
    on: bool
    integration: Integration[Any] | None  # None: this install does not know it
    config: IntegrationConfig | None
    unreadable: str = ""  # why `config` is None: secrets that do not open, an unknown kind
    secrets: tuple[str, ...] = ()  # the config's secret values, masked in what comes back


class Targets:
    """Configurations by id, as of the newest version a claim has shown."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._known: dict[str, Target] = {}

    def get(self, configuration_id: str) -> Target | None:
        """The configuration, or None when it was deleted."""
        return self._known.get(configuration_id)

    def integration_key(self, configuration_id: str) -> str:
        """The configuration's integration, as metrics label it ("unknown" when it is not
        known here)."""
        target = self._known.get(configuration_id)
        integration = target.integration if target is not None else None
        return integration.key if integration is not None else "unknown"

    async def refresh(self, claimed: Iterable[Claimed]) -> None:
        """Open the configurations whose version this worker has not seen yet."""
        stale = set()
        for delivery in claimed:
            known = self._known.get(delivery.configuration_id)
            if delivery.configuration_version is None:
                self._known.pop(delivery.configuration_id, None)
            elif known is None or known.version != delivery.configuration_version:
                stale.add(delivery.configuration_id)
        if not stale:
            return
        rows = await self._services.store.configurations.load(stale)
        for row in rows.values():
            try:
                integration = self._services.catalog.get(row.integration_key)
            except NotFound as error:
                # Its integration is gone from this install (a manifest removed or refused):
                # its deliveries fail and wait, the others go on.
                log.error("configuration.unknown_integration", configuration_id=row.id)
                self._known[row.id] = Target(row.version, row.on, None, None, error.message)
                continue
            try:
                config = open_config(self._services, row)
            except ValueError as error:
                # Typically a process with another PUSHGATE_SECRET_KEY: show it in the error log
                # of the configuration, rather than failing the whole batch again and again.
                log.error("configuration.unreadable", configuration_id=row.id, error=str(error))
                self._known[row.id] = Target(row.version, row.on, integration, None, str(error))
                continue
            secrets = tuple(integration.secret_values(config))
            self._known[row.id] = Target(row.version, row.on, integration, config, "", secrets)
