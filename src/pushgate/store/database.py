"""Engine creation and migrations.

SQLite gets WAL, foreign keys and explicit write transactions, in files only this user can read
(`datadir.private_sqlite`). PostgreSQL gets a sized pool, the configured schema as search_path,
and migrations serialized across processes by an advisory lock. Every engine hides SQL
parameters from its errors (`hide_parameters`): they hold event payloads and token hashes, and
errors end up in logs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import sqlalchemy
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event, func, make_url, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, SingletonThreadPool

from pushgate.datadir import private_file, private_sqlite
from pushgate.settings import Settings

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
# Wait this long for another writer before SQLite reports "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Every process that migrates takes this PostgreSQL advisory lock first, so that API nodes and
# workers starting together do not run `upgrade head` over each other. Any constant would do:
# this one is "pushgate" in ASCII.
MIGRATION_LOCK = 0x70757368676174


def create_engine(
    settings: Settings, *, pooled: bool = True, name: str = "pushgate", **options: Any
) -> AsyncEngine:
    """The async engine for `settings.database_url`.

    PostgreSQL only: `pooled=False` opens a fresh connection per `connect()` and really closes
    it afterwards, for a long-lived connection that must not hold a pool slot (the listener);
    `name` is the `application_name` that `pg_stat_activity` shows.
    """
    options.setdefault("hide_parameters", True)
    if settings.is_sqlite:
        url = make_url(settings.database_url)
        if url.database and url.database != ":memory:":
            private_sqlite(Path(url.database))
        engine = create_async_engine(settings.database_url, **options)
        _tune_sqlite(engine.sync_engine)
        return engine
    server_settings = {"application_name": name}
    if settings.database_schema is not None:
        server_settings["search_path"] = settings.database_schema
    options.setdefault("connect_args", {}).setdefault("server_settings", server_settings)
    if pooled:
        options.setdefault("pool_size", settings.database_pool_size)
        options.setdefault("max_overflow", settings.database_max_overflow)
        options.setdefault("pool_pre_ping", True)
    else:
        options["poolclass"] = NullPool
    return create_async_engine(settings.database_url, **options)


# Errors that mean "the database cannot be reached or used right now", not a bug or bad data.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,  # refused, reset, locked, disk I/O, server shutting down
    sqlalchemy.exc.InterfaceError,  # the connection is closed
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.TooManyConnectionsError,
    OSError,  # refused, unreachable, name resolution
    TimeoutError,
)


def is_unavailable(error: BaseException) -> bool:
    """True when `error` (or what caused it) says the database is unreachable right now."""
    seen: BaseException | None = error
    for _ in range(10):  # a chain of causes, not a cycle
        if seen is None:
            return False
        if isinstance(seen, _UNAVAILABLE):
            return True
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe(error: BaseException) -> str:
    """What went wrong, in one line, without the statement or its parameters (they may hold
    payloads and token hashes)."""
    inner: BaseException = error
    if isinstance(error, sqlalchemy.exc.StatementError) and error.orig is not None:
        inner = error.orig
    text = str(inner).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(inner).__name__}: {first[:300]}" if first else type(inner).__name__


# The execution option of connections that only read (see `reading`).
READS_ONLY = "pushgate_reads_only"


def reading(engine: AsyncEngine) -> AsyncConnection:
    """A connection for reads only (`async with reading(engine) as conn`): on SQLite its
    transaction takes no write lock. It is rolled back at the end, as any `connect()`."""
    return engine.execution_options(**{READS_ONLY: True}).connect()


def dialect_insert(dialect: str, table: Any) -> Any:
    """An INSERT with the dialect's `on_conflict_do_*` (PostgreSQL's or SQLite's)."""
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


# Ids per `IN (…)` list when a caller may pass very many (SQLite's variable limit is 32,766).
IDS_PER_QUERY = 10_000


def bare_sqlite(conn: Connection) -> Any:
    """The sqlite3 connection under `conn`, for the hot path's statements; None on another
    database."""
    if conn.dialect.name != "sqlite":
        return None
    return conn.connection.dbapi_connection


def rows_in(
    raw: Any, statement: str, ids: Sequence[Any], *, before: Sequence[Any] = ()
) -> list[Any]:
    """The rows of `statement` on the bare sqlite3 connection `raw`, for `ids`.

    `statement` holds `IN ({marks})`, filled with a placeholder per id, `IDS_PER_QUERY` ids
    at a time; `before` are the parameters that come ahead of the list.
    """
    found: list[Any] = []
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start : start + IDS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        found += raw.execute(statement.format(marks=marks), (*before, *chunk)).fetchall()
    return found


def _tune_sqlite(
    engine: Engine, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, checkpoints: bool = True
) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, open transactions (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching a new file to WAL needs a lock, too.
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not checkpoints:
            cursor.execute("PRAGMA wal_autocheckpoint=0")  # another connection does them
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction can then not
        # fail half-way when another connection wrote in between (SQLITE_BUSY_SNAPSHOT).
        # `Transactions` may have begun it on the driver already. A connection that only
        # reads (`reading`) begins DEFERRED: it takes no write lock, so a dashboard or a
        # metrics scrape never makes the hot path wait (WAL readers do not block the writer).
        if getattr(connection.connection.dbapi_connection, "in_transaction", False):
            return
        reads = connection.get_execution_options().get(READS_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reads else "BEGIN IMMEDIATE")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at pushgate's migrations, optionally bound to a connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema up to date (`alembic upgrade head`); safe to run from many processes."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        # SQLite's answer to the advisory lock below: a lock file beside the database, held
        # by one migrating process at a time (several starting at once otherwise contend for
        # SQLite's write lock while converting the file to WAL and changing the schema).
        lock_path = Path(f"{engine.url.database}.migrate-lock")
        private_file(lock_path)
        with lock_path.open("a") as lock:  # noqa: ASYNC230 - a local empty file
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            try:
                await _upgrade(engine)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    else:
        await _upgrade(engine)


async def _upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Held until this transaction ends; PostgreSQL's DDL is transactional, so whoever
            # waited here finds the schema already at head.
            await connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))


# SQLite: how often (seconds) the hot path's transactions are followed by a WAL checkpoint,
# which runs in a thread so that the event loop never waits for the disk.
CHECKPOINT_INTERVAL = 1.0


class Transactions:
    """Runs a synchronous unit of work, `work(connection)`, as one transaction.

    The hot path uses it: ingest, claims, records, lease renewals, releases.

    On SQLite a unit of work runs on the event loop's own thread, on a plain pysqlite
    connection that does not wait for locks: a transaction of the hot path takes a
    millisecond or two of CPU, which the process spends anyway. That connection stays checked
    out, and its transactions begin and commit on the driver itself: SQLAlchemy's checkout,
    reset and transaction events cost more than the commit of a single event did. In a thread
    it was several times slower under load: each of the driver's many short GIL releases
    inside a transaction can wait a whole switch interval (5 ms) for the busy event loop to
    give the GIL back. When another connection holds the write lock (the API's own engine,
    another process), the unit of work goes to a thread instead, whose connection waits for
    the lock as long as `SQLITE_BUSY_TIMEOUT_MS`. WAL checkpoints, the one part that writes
    the database file, are taken off the loop too: its connection makes none, and after
    transactions a PASSIVE checkpoint runs in the thread at most every `CHECKPOINT_INTERVAL`,
    outside any transaction.

    On PostgreSQL it runs on the async engine (`run_sync`, asyncpg), where transactions of one
    process do run side by side.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite: Engine | None = None  # on the loop: never waits for a lock
        self._connection: Connection | None = None  # the loop's, kept checked out
        self._waiting: Engine | None = None  # in the thread: waits for the lock
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._checkpointed = 0.0
        self._checkpointing: concurrent.futures.Future[None] | None = None
        if engine.dialect.name == "sqlite":
            url = engine.url.set(drivername="sqlite+pysqlite")
            self._sqlite = sqlalchemy.create_engine(
                url, hide_parameters=True, poolclass=SingletonThreadPool
            )
            _tune_sqlite(self._sqlite, busy_timeout_ms=0, checkpoints=False)
            self._waiting = sqlalchemy.create_engine(
                url, hide_parameters=True, poolclass=SingletonThreadPool
            )
            _tune_sqlite(self._waiting)
            self._thread = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="pushgate-sqlite"
            )

    async def run(self, work: Callable[[Connection], T]) -> T:
        """The result of `work`, committed; rolled back when it raises."""
        if self._sqlite is None or self._waiting is None or self._thread is None:
            async with self._engine.begin() as connection:
                return await connection.run_sync(work)
        started = False

        def counted(connection: Connection) -> T:
            nonlocal started
            started = True
            return work(connection)

        try:
            result = self._run_on_loop(counted)
        except (sqlalchemy.exc.OperationalError, sqlite3.OperationalError) as error:
            if started or not _busy(error):
                raise
            # Another connection writes: wait for it in the thread, not on the loop.
            result = await asyncio.get_running_loop().run_in_executor(
                self._thread, self._run_here, self._waiting, work
            )
        self._maybe_checkpoint()
        return result

    def _maybe_checkpoint(self) -> None:
        now = time.monotonic()
        if now - self._checkpointed < CHECKPOINT_INTERVAL or self._thread is None:
            return
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        self._checkpointed = now
        self._checkpointing = self._thread.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        if self._waiting is not None:
            # On the driver, outside any transaction: through SQLAlchemy the pragma would begin
            # one (BEGIN IMMEDIATE) and hold the write lock through the checkpoint's fsync,
            # which stalled every writer, the loop's hot path among them, for up to 130 ms.
            with self._waiting.connect() as connection:
                raw: Any = connection.connection.dbapi_connection
                raw.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _run_on_loop(self, work: Callable[[Connection], T]) -> T:
        """`work` in a transaction of the loop's connection, begun and ended on the driver
        (SQLAlchemy's own transaction, if a statement of `work` starts one, ends with it)."""
        assert self._sqlite is not None
        if self._connection is None or self._connection.invalidated:
            self._connection = self._sqlite.connect()
        connection = self._connection
        raw: Any = connection.connection.dbapi_connection
        raw.execute("BEGIN IMMEDIATE")  # "database is locked" here: nothing has started
        try:
            result = work(connection)
            raw.commit()
        except BaseException:
            if not connection.invalidated:  # never left inside a transaction
                raw.rollback()
                connection.rollback()
            raise
        connection.commit()  # ends SQLAlchemy's own, if a statement of `work` began one
        return result

    @staticmethod
    def _run_here(engine: Engine, work: Callable[[Connection], T]) -> T:
        with engine.begin() as connection:
            return work(connection)

    def dispose(self) -> None:
        """Close the SQLite connections and stop the thread."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._sqlite is not None:
            self._sqlite.dispose()
        if self._waiting is not None and self._thread is not None:
            # The thread's connection belongs to the thread: close it there, then stop it.
            self._thread.submit(self._waiting.dispose).result()
            self._thread.shutdown(wait=True)


def _busy(error: sqlalchemy.exc.OperationalError | sqlite3.OperationalError) -> bool:
    """True for SQLite's "database is locked" (another connection holds the write lock)."""
    inner = error.orig if isinstance(error, sqlalchemy.exc.OperationalError) else error
    return "database is locked" in str(inner)
