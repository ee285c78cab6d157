"""The data directory and the private files in it.

The directory is created 0700; the files that hold secrets or data — the SQLite database and
its `-wal` and `-shm` files, `secret.key`, `initial-admin-token` — are 0600. SQLite creates its
`-wal` and `-shm` files with the mode of the database file, so creating that one 0600 before
SQLite opens it is enough; files an older version created with wider modes are narrowed.
"""

from __future__ import annotations

import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
# The first bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"


class NotSqlite(ValueError):
    """The database path names a file that is not an SQLite database (left untouched)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is not an SQLite database")
        self.path = path


def make_data_dir(path: Path) -> None:
    """Create the data directory (and its parents) readable by this user only, if missing."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if it is missing; narrow it to 0600 if it exists."""
    make_data_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, a file readable by this user only."""
    private_file(path)
    path.write_text(text)


def private_sqlite(database: Path) -> None:
    """Make the SQLite database 0600 before SQLite opens it (its -wal and -shm follow), and
    narrow whichever of its companion files already exist.

    `NotSqlite`, changing nothing, when the path holds a file that is not a database (a wrong
    PUSHGATE_DATABASE_URL must not narrow, or write to, somebody else's file)."""
    if database.is_file() and database.stat().st_size:
        with database.open("rb") as handle:
            if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise NotSqlite(database)
    private_file(database)
    for suffix in SQLITE_SUFFIXES[1:]:
        companion = Path(f"{database}{suffix}")
        if companion.exists():
            companion.chmod(FILE_MODE)
