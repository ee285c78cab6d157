"""Structured logging: structlog events with stable names, one JSON or console line each.

Every line the process writes has the same shape, whoever wrote it: pushgate's own events go
through structlog; the standard `logging` records of libraries (uvicorn, alembic, asyncio,
aiohttp) go through the same processors (`structlog.stdlib.ProcessorFormatter`), with the
message as the event and the library's logger name. An exception's traceback is a field of its
line (`exception`), never lines of its own.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# Libraries log every step at DEBUG (aiosqlite each statement): they start at INFO whatever
# PUSHGATE_LOG_LEVEL says.
LIBRARY_LEVEL = logging.INFO
# Alembic announces every migration step at INFO; only the outcome matters to operators.
QUIET_LIBRARIES = ("alembic",)


def configure(
    level: str = "info",
    *,
    format: str = "auto",
    json_lines: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and the standard logging of libraries at `level`, writing to `stream`
    (stderr by default).

    `format`: `json`, `console`, or `auto` (console on a terminal, JSON otherwise);
    `json_lines`, when given, decides instead.
    """
    numeric = LEVELS.get(level.lower(), logging.INFO)
    out = stream or sys.stderr
    if json_lines is None:
        json_lines = format == "json" or (format == "auto" and not out.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # The console renderer formats exceptions itself (readably); JSON gets them as a string.
    ending: list[structlog.types.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if json_lines
        else [structlog.dev.ConsoleRenderer(colors=out.isatty())]
    )
    structlog.configure(
        processors=[*shared, *ending],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=stream is None,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *ending],
        )
    )
    root = logging.getLogger()
    for previous in root.handlers:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(max(numeric, LIBRARY_LEVEL))
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


class Outage:
    """Says once that the database cannot be reached, counts what failed meanwhile (with a
    reminder every `remind_every` seconds), and says when it answers again.

    One per process, shared by the API and the worker: an outage of ten seconds under load is
    two or three log lines, not one per request.
    """

    def __init__(
        self,
        *,
        remind_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = structlog.get_logger("pushgate.database")
        self._remind_every = remind_every
        self._clock = clock
        self._since: float | None = None
        self._reminded = 0.0
        self._failures = 0

    @property
    def active(self) -> bool:
        """True between the first failure and the next success."""
        return self._since is not None

    def failed(self, error: str, **context: Any) -> None:
        """One operation failed because the database is unreachable (`error`: one line)."""
        now = self._clock()
        self._failures += 1
        if self._since is None:
            self._since = self._reminded = now
            self._log.error("database.unavailable", error=error, **context)
        elif now - self._reminded >= self._remind_every:
            self._reminded = now
            self._log.error(
                "database.still_unavailable",
                error=error,
                failures=self._failures,
                for_s=round(now - self._since, 1),
            )

    def succeeded(self) -> None:
        """An operation reached the database: an outage, if any, is over."""
        if self._since is not None:
            self._log.info(
                "database.available",
                failures=self._failures,
                down_s=round(self._clock() - self._since, 1),
            )
            self._since, self._failures = None, 0
