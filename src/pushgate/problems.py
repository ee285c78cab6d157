"""Mistakes a person can fix, in one or two lines: settings, the database, files, a busy port.

`Problem` is what the CLI prints without a traceback, exiting 2. `problem_of(error, settings)`
recognizes the errors that mean a mistake in the settings or around them — a wrong variable
(settings.py names it), a database that cannot be opened (store/diagnosis.py says why), a file
of the data directory that cannot be written, a request the domain refuses (no such
configuration) — and says it; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pydantic import ValidationError

from pushgate.errors import RequestError
from pushgate.settings import Settings, settings_problems


class Problem(Exception):
    """A mistake explained: `lines` say what is wrong and what to do (one or two)."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def problem_of(error: BaseException, settings: Settings | None) -> Problem | None:
    """The mistake `error` reveals, or None when it is not one a person can fix by settings."""
    if isinstance(error, Problem):
        return error
    if isinstance(error, ValidationError) and error.title == Settings.__name__:
        return Problem(*settings_problems(error))
    if isinstance(error, RequestError):
        return Problem(error.message)
    if settings is None:
        return None
    from pushgate.store.diagnosis import explain  # SQLAlchemy: only once something failed

    said = explain(error, settings)
    if said is not None:
        return Problem(said)
    if isinstance(error, OSError) and error.filename is not None:
        return Problem(
            f"PUSHGATE_DATA_DIR: {error.filename}: {error.strerror}; pushgate needs to read and "
            f"write its data directory ({settings.data_dir.resolve()}) as this user"
        )
    return None


def missing_database(settings: Settings) -> Problem | None:
    """A Problem when the settings name an SQLite file that does not exist (a command run from
    the wrong directory would otherwise create an empty database there), else None."""
    path = settings.sqlite_path
    if path is None or path.exists():
        return None
    if "database_url" in settings.model_fields_set:
        where = "PUSHGATE_DATABASE_URL names it"
    elif settings.data_dir.is_absolute():
        where = f"PUSHGATE_DATA_DIR is {settings.data_dir}"
    else:
        where = (
            f"PUSHGATE_DATA_DIR is {settings.data_dir}, relative to the current directory; run "
            "pushgate where its data directory is, or set an absolute path"
        )
    return Problem(
        f"no pushgate database at {path} ({where})",
        "`pushgate serve` and `pushgate migrate --create` create a new one.",
    )
