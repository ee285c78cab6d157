"""`pushgate backup`: the SQLite database, copied while pushgate runs, with the keys that open
its secrets, into a new directory that is itself a data directory.

Restoring is using that directory as `PUSHGATE_DATA_DIR` (or copying its files into one) with
pushgate stopped. The copy is checked before the command says it is done: SQLite's integrity
check, and every configuration's secrets opened with the keys that went with it. PostgreSQL is
backed up with `pg_dump` (docs/operations.md#backup-and-restore).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pushgate.datadir import FILE_MODE, make_data_dir
from pushgate.problems import Problem
from pushgate.sealing import KEY_FILE_NAME, PREVIOUS_KEY_FILE_NAME, Keyring, SecretBox
from pushgate.settings import DATABASE_FILE, Settings
from pushgate.store import Store
from pushgate.store.copy import copy_sqlite

PG_DUMP_HINT = (
    "PostgreSQL is backed up with pg_dump, e.g. `pg_dump --format=custom --file=pushgate.dump "
    '"$DATABASE_URL"`, and PUSHGATE_SECRET_KEY kept beside it (docs/operations.md)'
)


@dataclass
class Backup:
    """A finished backup: where, which files, how large, and what it holds."""

    directory: Path
    files: list[str] = field(default_factory=list)
    size: int = 0
    configurations: int = 0
    keys_included: bool = False


async def back_up(settings: Settings, directory: Path) -> Backup:
    """Copy the database and its key files into `directory` (new, or empty), then check it."""
    source = settings.sqlite_path
    if source is None:
        raise Problem("pushgate backup copies SQLite databases.", PG_DUMP_HINT)
    done = Backup(_prepare(directory))
    done.size = await copy_sqlite(source, directory / DATABASE_FILE)
    done.files.append(DATABASE_FILE)
    keyring = Keyring(settings)
    if keyring.from_files:
        done.files += _copy_keys(keyring, directory)
        done.keys_included = True
    done.configurations = await _check_secrets(settings, directory)
    return done


def _prepare(directory: Path) -> Path:
    """Make the backup's directory (0700); its absolute path."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise Problem(f"{directory} exists and is not empty; name a new directory")
    make_data_dir(directory)
    return directory.resolve()


def _copy_keys(keyring: Keyring, directory: Path) -> list[str]:
    """Copy the key files (0600) into `directory`; their names."""
    copied = []
    for key_file in (keyring.primary_path, keyring.previous_path):
        if key_file.exists():
            target = directory / key_file.name
            shutil.copyfile(key_file, target)
            target.chmod(FILE_MODE)
            copied.append(key_file.name)
    return copied


async def _check_secrets(settings: Settings, directory: Path) -> int:
    """How many configurations the copy holds; a Problem when the keys that went with it (or
    the environment's) do not open every one's secrets."""
    copy = Settings(
        data_dir=directory,
        database_url=f"sqlite:///{(directory / DATABASE_FILE).resolve()}",
        secret_key=settings.secret_key,
        previous_secret_key=settings.previous_secret_key,
    )
    store = await Store.open(copy, migrated=False)
    try:
        sealed = await store.configurations.sealed()
        count = len(await store.configurations.all())
    finally:
        await store.close()
    box = SecretBox(Keyring(copy))
    unreadable = []
    for configuration_id, value in sealed.items():
        try:
            box.open(value)
        except ValueError:
            unreadable.append(configuration_id)
    if unreadable:
        raise Problem(
            f"the backup in {directory} is not usable: {len(unreadable)} configurations' "
            f"secrets do not open with its keys ({', '.join(unreadable[:3])}…)",
            f"they were sealed under a key this process does not have ({KEY_FILE_NAME}, "
            f"{PREVIOUS_KEY_FILE_NAME} or PUSHGATE_SECRET_KEY)",
        )
    return count
