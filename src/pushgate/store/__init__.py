"""Persistence: the only package that imports SQLAlchemy.

`Store` bundles the domain-verb stores over one engine: configurations (with status and error
log), deliveries (enqueue, claim_due, record, release) and tokens.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.settings import Settings
from pushgate.store.configurations import ConfigurationRow, ConfigurationStore, ErrorEntry, Status
from pushgate.store.database import create_engine, migrate
from pushgate.store.deliveries import Claimed, DeliveryStore, Failure, NewEvent, Result
from pushgate.store.tables import DeliveryState, Role
from pushgate.store.tokens import TokenRow, TokenStore

__all__ = [
    "Claimed",
    "ConfigurationRow",
    "DeliveryState",
    "ErrorEntry",
    "Failure",
    "NewEvent",
    "Result",
    "Role",
    "Status",
    "Store",
    "TokenRow",
]


class Store:
    """The stores of one database."""

    def __init__(self, engine: AsyncEngine, settings: Settings, *, status_shard: int = 0) -> None:
        self.engine = engine
        self.configurations = ConfigurationStore(engine)
        self.deliveries = DeliveryStore(
            engine, error_log_size=settings.error_log_size, status_shard=status_shard
        )
        self.tokens = TokenStore(engine)

    @classmethod
    async def open(cls, settings: Settings, *, status_shard: int = 0) -> Store:
        """Connect and migrate to the latest schema."""
        engine = create_engine(settings)
        await migrate(engine)
        return cls(engine, settings, status_shard=status_shard)

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
