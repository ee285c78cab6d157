"""Persistence: the only package that imports SQLAlchemy or speaks SQL.

`Store` bundles the domain-verb stores over one engine: configurations (with status and error
log), deliveries (enqueue, claim_due, extend_leases, record, release, listen), the backlog the
metrics read, tokens, web sessions and event sources. On PostgreSQL it also owns the listener
connection that wakes workers (`listener.py`).
"""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.settings import Settings
from pushgate.store.backlog import Backlog, BacklogStore
from pushgate.store.configurations import ConfigurationRow, ConfigurationStore
from pushgate.store.database import (
    Transactions,
    create_engine,
    describe,
    is_unavailable,
    migrate,
    reading,
)
from pushgate.store.deliveries import (
    Claim,
    Claimed,
    ConfigurationsChanged,
    DeliveryStore,
    Failure,
    Lease,
    NewEvent,
    Recorded,
    Result,
)
from pushgate.store.listener import Listener, channel_name
from pushgate.store.sessions import SessionStore
from pushgate.store.sources import SourceRow, SourceStore
from pushgate.store.status import ErrorEntry, Health, Status
from pushgate.store.tables import STATUS_SHARDS
from pushgate.store.tokens import TokenRow, TokenStore

__all__ = [
    "STATUS_SHARDS",
    "Backlog",
    "Claim",
    "Claimed",
    "ConfigurationRow",
    "ConfigurationsChanged",
    "ErrorEntry",
    "Failure",
    "Health",
    "Lease",
    "NewEvent",
    "Recorded",
    "Result",
    "SourceRow",
    "Status",
    "Store",
    "TokenRow",
    "describe",
    "is_unavailable",
]


class Store:
    """The stores of one database.

    `status_shard` (0 ≤ shard < STATUS_SHARDS) is the status row this process adds its counts
    to: processes that record outcomes concurrently should use different shards.
    """

    def __init__(self, engine: AsyncEngine, settings: Settings, *, status_shard: int = 0) -> None:
        if not 0 <= status_shard < STATUS_SHARDS:
            raise ValueError(f"status_shard must be in 0..{STATUS_SHARDS - 1}")
        self.engine = engine
        self._listener_engine: AsyncEngine | None = None
        listener = None
        if engine.dialect.name == "postgresql":
            self._listener_engine = create_engine(settings, pooled=False, name="pushgate-listener")
            listener = Listener(self._listener_engine, channel_name(settings.database_schema))
        # One runner of hot-path transactions for the process (on SQLite: one thread).
        self._transactions = Transactions(engine)
        self.configurations = ConfigurationStore(engine, self._transactions)
        self.deliveries = DeliveryStore(
            engine,
            self._transactions,
            error_log_size=settings.error_log_size,
            attempt_log_size=settings.attempt_log_size,
            status_shard=status_shard,
            listener=listener,
        )
        self.backlog = BacklogStore(engine)
        self.tokens = TokenStore(engine)
        self.sessions = SessionStore(engine)
        self.sources = SourceStore(engine)

    @classmethod
    async def open(
        cls, settings: Settings, *, status_shard: int = 0, migrated: bool = True
    ) -> Store:
        """Connect and (unless `migrated` is False: only to read) migrate to the latest
        schema."""
        engine = create_engine(settings)
        if migrated:
            await migrate(engine)
        return cls(engine, settings, status_shard=status_shard)

    async def revision(self) -> str | None:
        """The schema revision the database is at (Alembic's), None before the first."""
        async with reading(self.engine) as conn:
            revision: str | None = await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
            return revision

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with reading(self.engine) as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        """Close every pooled connection."""
        self._transactions.dispose()
        await self.engine.dispose()
        if self._listener_engine is not None:
            await self._listener_engine.dispose()
