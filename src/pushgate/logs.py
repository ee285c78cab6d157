"""Structured logging: structlog events with stable names, one JSON or console line each."""

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


def configure(
    level: str = "info", *, json_lines: bool | None = None, stream: TextIO | None = None
) -> None:
    """Set up structlog (and the standard logging of libraries) at `level`.

    JSON lines when the output is not a terminal (log collectors), readable lines otherwise.
    """
    numeric = LEVELS.get(level.lower(), logging.INFO)
    out = stream or sys.stderr
    as_json = not out.isatty() if json_lines is None else json_lines
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=stream is None,
    )
    logging.basicConfig(
        level=max(numeric, logging.INFO),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Alembic announces every migration step at INFO; only the outcome matters to operators.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))


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
