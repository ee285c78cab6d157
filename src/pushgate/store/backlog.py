"""The backlog as metrics see it: what is pending, since when, and every configuration's breaker.

Read by any process that serves /metrics (API nodes and workers alike), a few times a minute:
two queries, one over the configurations (with their breakers), one over the pending
deliveries only (grouped by configuration), so its cost follows the backlog.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.breaker import Breaker
from pushgate.domain import DeliveryState
from pushgate.store.database import reading
from pushgate.store.status import breaker_of
from pushgate.store.tables import configuration_health, configurations, deliveries


@dataclass(frozen=True, slots=True)
class ConfigurationState:
    """What a configuration's health is made of: its integration, `on`, and its breaker."""

    integration_key: str
    on: bool
    breaker: Breaker


@dataclass(frozen=True, slots=True)
class Backlog:
    """Pending deliveries (waiting, held or in flight) by integration; when the oldest one of
    a configuration that is on was created (None: none pending); every configuration."""

    pending: dict[str, int] = field(default_factory=dict)
    oldest_pending_at: int | None = None
    configurations: list[ConfigurationState] = field(default_factory=list)


class BacklogStore:
    """Reads the backlog in one go (`measure`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def measure(self) -> Backlog:
        """The backlog now."""
        found = (
            select(configurations.c.id, configurations.c.integration_key, configurations.c.on)
            .add_columns(*configuration_health.c)
            .select_from(configurations.outerjoin(configuration_health))
        )
        pending = select(
            deliveries.c.configuration_id,
            func.count().label("pending"),
            func.min(deliveries.c.created_at).label("oldest"),
        ).where(deliveries.c.state == DeliveryState.PENDING.value)
        async with reading(self._engine) as conn:
            rows = (await conn.execute(found)).all()
            waiting = (await conn.execute(pending.group_by(deliveries.c.configuration_id))).all()
        known = {row.id: row for row in rows}
        by_integration: Counter[str] = Counter()
        oldest: int | None = None
        for row in waiting:
            configuration = known.get(row.configuration_id)
            if configuration is None:  # deleted since the first query
                continue
            by_integration[configuration.integration_key] += int(row.pending)
            if configuration.on and (oldest is None or row.oldest < oldest):
                oldest = int(row.oldest)
        states = [
            ConfigurationState(
                row.integration_key,
                bool(row.on),
                breaker_of(row) if row.configuration_id is not None else Breaker(),
            )
            for row in rows
        ]
        return Backlog(dict(by_integration), oldest, states)
