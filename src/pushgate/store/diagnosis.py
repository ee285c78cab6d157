"""Database mistakes in words: what an error while connecting or migrating means, and what to do.

`explain(error, settings)` turns the exceptions of opening a database — nothing listening, an
unknown host, a refused user or password, no such database or schema, no right to create
tables, too many connections, an SQLite path that cannot be created or is not a database, a
schema migrated by a newer pushgate — into one line that names the setting (or the part of
PUSHGATE_DATABASE_URL) at fault and what to do about it. It never shows the password.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import sqlalchemy.exc
from alembic.util.exc import CommandError
from sqlalchemy import make_url

from pushgate.datadir import NotSqlite
from pushgate.settings import Settings

# PostgreSQL's SQLSTATE codes for the mistakes explained here.
INVALID_DATABASE = "3D000"
INVALID_SCHEMA = "3F000"
INVALID_AUTHORIZATION = "28000"
INVALID_PASSWORD = "28P01"
INSUFFICIENT_PRIVILEGE = "42501"
TOO_MANY_CONNECTIONS = "53300"
CANNOT_CONNECT_NOW = "57P03"
# PostgreSQL's port when the URL names none.
POSTGRES_PORT = 5432
# Causes followed from an error to what raised it first (a chain, not a cycle).
CHAIN_LIMIT = 10


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    for _ in range(CHAIN_LIMIT):
        if seen is None:
            return
        yield seen
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) else (seen.__cause__ or seen.__context__)


def explain(error: BaseException, settings: Settings) -> str | None:
    """One line saying what is wrong with the database settings, or None when `error` is
    not a mistake this knows."""
    if settings.is_sqlite:
        return _sqlite(error, settings)
    url = make_url(settings.database_url)
    where = f"{url.host or 'localhost'}:{url.port or POSTGRES_PORT}"
    url_var = "PUSHGATE_DATABASE_URL"
    for cause in _chain(error):
        state = getattr(cause, "sqlstate", None)
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        if state == INVALID_DATABASE:
            return (
                f"{url_var}: database {url.database!r} does not exist on {where}; create it "
                f"(createdb {url.database}) or fix the URL's database name"
            )
        if state == INVALID_SCHEMA:
            return (
                f"PUSHGATE_DATABASE_SCHEMA: schema {settings.database_schema!r} does not exist "
                f"in database {url.database!r}; create it (CREATE SCHEMA "
                f"{settings.database_schema}) or unset PUSHGATE_DATABASE_SCHEMA"
            )
        if state in (INVALID_AUTHORIZATION, INVALID_PASSWORD):
            return (
                f"{url_var}: {where} refused user {url.username!r} ({detail}); fix the URL's "
                "user and password, or the server's pg_hba.conf"
            )
        if state == INSUFFICIENT_PRIVILEGE:
            return (
                f"{url_var}: user {url.username!r} may not create pushgate's tables ({detail}); "
                "connect as the schema's owner or grant it CREATE on the schema"
            )
        if state == TOO_MANY_CONNECTIONS:
            return (
                f"{url_var}: {where} has no connection left ({detail}); raise max_connections "
                "or lower PUSHGATE_DATABASE_POOL_SIZE (docs/scaling.md#connections)"
            )
        if state == CANNOT_CONNECT_NOW:
            return f"{url_var}: {where} is starting up or shutting down; try again shortly"
        if isinstance(cause, socket.gaierror):
            return f"{url_var}: host {url.host!r} is unknown ({cause.strerror}); fix the URL's host"
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"{url_var}: nothing accepts connections at {where} (connection refused); "
                "start PostgreSQL there or fix the URL's host and port"
            )
        if isinstance(cause, TimeoutError):
            return f"{url_var}: {where} did not answer in time; check the host, port and firewall"
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return f"{url_var}: {where} cannot be reached ({cause.strerror}); fix the URL's host"
        if newer := _newer_schema(cause):
            return newer
    return None


def _sqlite(error: BaseException, settings: Settings) -> str | None:
    path = settings.sqlite_path
    # Which variable chose the file: an explicit URL, or the data directory.
    var = (
        "PUSHGATE_DATABASE_URL"
        if settings.model_fields_set & {"database_url"}
        else ("PUSHGATE_DATA_DIR")
    )
    for cause in _chain(error):
        if isinstance(cause, NotSqlite):
            return (
                f"{var}: {cause.path} is not an SQLite database (left untouched); point "
                f"{var} at pushgate's database"
            )
        if isinstance(cause, sqlalchemy.exc.DatabaseError) and "not a database" in str(cause):
            return f"{var}: {path} is not an SQLite database; point {var} at pushgate's database"
        if isinstance(cause, OSError) and cause.filename is not None:
            return (
                f"{var}: cannot create {cause.filename} ({cause.strerror}); choose a "
                "directory this user may write"
            )
        if isinstance(cause, sqlalchemy.exc.OperationalError) and "unable to open" in str(cause):
            return (
                f"{var}: SQLite cannot open {path}; check that its directory exists and this "
                "user may write it"
            )
        if newer := _newer_schema(cause):
            return newer
    return None


def _newer_schema(cause: BaseException) -> str | None:
    """A database migrated by a later pushgate: this one does not know its revision."""
    if isinstance(cause, CommandError) and "Can't locate revision" in str(cause):
        return (
            "the database was migrated by a newer pushgate (this one does not know its schema "
            f"revision: {cause}); run that version, or restore a backup made by this one"
        )
    return None
