"""Structured logging: structlog events with stable names, one JSON or console line each."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

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
