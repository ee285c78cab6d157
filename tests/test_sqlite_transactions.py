"""SQLite's hot-path transactions (`store.database.Transactions`): on the loop's own connection,
begun and ended on the driver, to a thread when another connection writes, and WAL checkpoints
that never hold the write lock."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from pushgate.runtime import running
from pushgate.settings import Settings
from pushgate.store.database import Transactions, create_engine, migrate, reading
from pushgate.store.deliveries import _INSERT_DELIVERY

ROW = "INSERT INTO events (id, date, kind, received_at, payload) VALUES (?, 1, 'flag', 1, '{}')"


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[tuple[Transactions, Path]]:
    settings = Settings(data_dir=tmp_path, secret_key="s" * 40)
    engine = create_engine(settings)
    await migrate(engine)
    tx = Transactions(engine)
    yield tx, tmp_path / "pushgate.db"
    tx.dispose()
    await engine.dispose()


def insert(event_id: str, *, fail: bool = False) -> object:
    def work(conn: Connection) -> None:
        conn.connection.dbapi_connection.execute(ROW, (event_id,))  # type: ignore[union-attr]
        if fail:
            raise RuntimeError("the unit of work failed")

    return work


def stored(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM events")}


async def test_a_failed_unit_of_work_leaves_nothing_and_the_next_one_commits(
    sqlite: tuple[Transactions, Path],
) -> None:
    tx, path = sqlite
    with pytest.raises(RuntimeError):
        await tx.run(insert("lost", fail=True))  # type: ignore[arg-type]
    await tx.run(insert("kept"))  # type: ignore[arg-type]
    assert stored(path) == {"kept"}


async def test_a_commit_that_fails_leaves_the_connection_out_of_any_transaction(
    sqlite: tuple[Transactions, Path],
) -> None:
    tx, path = sqlite

    def dangling(conn: Connection) -> None:  # a delivery of no event, caught only at COMMIT
        raw: Any = conn.connection.dbapi_connection
        raw.execute("PRAGMA defer_foreign_keys=ON")
        raw.execute(_INSERT_DELIVERY, ("no such event", "no such configuration", "pending", 1, 1))

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await tx.run(dangling)
    await tx.run(insert("next"))  # type: ignore[arg-type]
    assert stored(path) == {"next"}


async def test_work_waits_in_the_thread_while_another_connection_writes(
    sqlite: tuple[Transactions, Path],
) -> None:
    tx, path = sqlite
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    waiting = asyncio.create_task(tx.run(insert("after")))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)
    assert not waiting.done()  # the loop goes on; the unit of work waits for the lock
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(waiting, 10)
    await tx.run(insert("on the loop again"))  # type: ignore[arg-type]
    assert stored(path) == {"after", "on the loop again"}


async def test_a_checkpoint_does_not_hold_the_write_lock(
    sqlite: tuple[Transactions, Path],
) -> None:
    """While the checkpoint's statement runs, another connection can still begin writing."""
    tx, path = sqlite
    await tx.run(insert("in the wal"))  # type: ignore[arg-type]
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA busy_timeout=0")
    seen: list[str] = []

    def during(statement: str) -> None:
        if "wal_checkpoint" in statement:
            writer.execute("BEGIN IMMEDIATE")  # "database is locked" if the checkpoint held it
            writer.execute("ROLLBACK")
            seen.append(statement)

    waiting, thread = tx._waiting, tx._thread
    assert waiting is not None
    assert thread is not None

    def trace() -> None:  # on the thread's own connection, where checkpoints run
        with waiting.connect() as conn:
            conn.connection.dbapi_connection.set_trace_callback(during)  # type: ignore[union-attr]

    thread.submit(trace).result()
    thread.submit(tx._checkpoint).result()
    thread.submit(tx._checkpoint).result()  # and again: the connection stays usable
    writer.close()
    assert seen == ["PRAGMA wal_checkpoint(PASSIVE)"] * 2


async def test_a_connection_that_reads_leaves_the_write_lock_free(
    sqlite: tuple[Transactions, Path], tmp_path: Path
) -> None:
    """The API's reads (pages, listings, metrics) never make a writer wait."""
    tx, path = sqlite
    engine = create_engine(Settings(data_dir=tmp_path, secret_key="s" * 40))
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA busy_timeout=0")
    try:
        async with reading(engine) as conn:
            assert (await conn.execute(text("SELECT count(*) FROM events"))).scalar() == 0
            writer.execute("BEGIN IMMEDIATE")  # "database is locked" if the read held it
            writer.execute(ROW, ("written while reading",))
            writer.execute("COMMIT")
        async with engine.begin() as conn:  # a transaction that writes still takes it
            await conn.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                writer.execute("BEGIN IMMEDIATE")
    finally:
        writer.close()
        await engine.dispose()
    await tx.run(insert("after"))  # type: ignore[arg-type]
    assert stored(path) == {"written while reading", "after"}


@pytest.mark.parametrize(("set_batch", "expected"), [(None, 25), (100, 100), (7, 7)])
async def test_the_worker_inside_serve_claims_smaller_batches_unless_told(
    tmp_path: Path, set_batch: int | None, expected: int
) -> None:
    extra = {} if set_batch is None else {"claim_batch_size": set_batch}
    settings = Settings(data_dir=tmp_path, secret_key="s" * 40, **extra)
    async with running(settings, with_worker=True, beside_api=True) as rt:
        assert rt.worker is not None
        assert rt.worker._batch == expected
    async with running(settings, with_worker=True) as rt:  # `pushgate worker`
        assert rt.worker is not None
        assert rt.worker._batch == (set_batch or 500)
