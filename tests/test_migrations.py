"""Alembic migrations produce exactly the tables the code defines."""

from __future__ import annotations

import asyncio
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


async def test_processes_that_start_together_migrate_one_after_another(
    settings: Settings,
) -> None:
    engines = [create_engine(settings) for _ in range(4)]
    try:
        async with asyncio.timeout(60):  # without the lock they may wait on each other forever
            await asyncio.gather(*(migrate(engine) for engine in engines))
        async with engines[0].connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        for engine in engines:
            await engine.dispose()
