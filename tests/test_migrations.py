"""Alembic migrations produce exactly the tables the code defines."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from pushgate.settings import Settings
from pushgate.store.database import create_engine, migrate
from pushgate.store.tables import metadata


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_upgrade_head_matches_the_table_definitions(settings: Settings) -> None:
    engine = create_engine(settings)
    await migrate(engine)
    async with engine.connect() as connection:
        diff = await connection.run_sync(differences)
    await engine.dispose()
    assert diff == []


async def test_migrating_twice_changes_nothing(settings: Settings) -> None:
    engine = create_engine(settings)
    await migrate(engine)
    await migrate(engine)
    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []
    await engine.dispose()
