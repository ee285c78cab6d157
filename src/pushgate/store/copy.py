"""A consistent copy of the SQLite database while pushgate runs (SQLite's online backup).

The copy is made in one step, inside one read transaction of the source: a snapshot of one
moment, whatever commits meanwhile. In WAL mode a reader blocks no writer, so pushgate keeps
working while it runs.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pushgate.datadir import private_file
from pushgate.store.database import SQLITE_BUSY_TIMEOUT_MS


class CopyFailed(Exception):
    """The copy does not pass SQLite's integrity check."""


async def copy_sqlite(source: Path, target: Path) -> int:
    """Copy the database `source` to the new file `target` (mode 0600); returns its size in
    bytes. `CopyFailed` when the copy is not sound."""
    return await asyncio.to_thread(_copy, source, target)


def _copy(source: Path, target: Path) -> int:
    private_file(target)
    # Read-only: a wrong path fails instead of creating an empty database.
    reading = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    writing = sqlite3.connect(target)
    try:
        reading.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        reading.backup(writing)
        (verdict,) = writing.execute("PRAGMA quick_check").fetchone()
    finally:
        writing.close()
        reading.close()
    if verdict != "ok":
        raise CopyFailed(f"the copy at {target} failed SQLite's integrity check: {verdict}")
    return target.stat().st_size
