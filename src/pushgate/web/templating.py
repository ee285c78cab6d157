"""Rendering: the Jinja2 environment, its filters, and the headers every page carries.

Timestamps are rendered in UTC as text (what a browser without JavaScript shows) and as Unix
milliseconds in `data-ts`, from which the script writes relative times and local times.
"""

from __future__ import annotations

import functools
import hashlib
import http
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from pushgate.configurations import health_of
from pushgate.events import inline_markdown_html

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
# Bodies longer than this (characters or lines) are folded behind "Show full body".
FOLD_CHARS = 600
FOLD_LINES = 8
PREVIEW_LINES = 4
# Pages show the user's data: never cached, never framed, scripts and styles only from here.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def iso(ms: int) -> str:
    """Unix milliseconds as an ISO 8601 UTC instant, for `<time datetime>`."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def utc(ms: int) -> str:
    """Unix milliseconds as readable UTC text: `2023-11-14 22:13:20 UTC`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def timestamp(ms: int | None, *, relative: bool = True, never: str = "Never") -> Markup:
    """A `<time>` element the script turns into "5 minutes ago" (or a local date and time)."""
    if ms is None:
        return Markup('<span class="never">{}</span>').format(never)
    kind = "relative" if relative else "local"
    return Markup(
        '<time datetime="{iso}" data-ts="{ms}" data-format="{kind}" title="{utc}">{utc}</time>'
    ).format(iso=iso(ms), ms=ms, kind=kind, utc=utc(ms))


@dataclass(frozen=True, slots=True)
class Body:
    """A response body made readable: pretty JSON when it is JSON, folded when long."""

    text: str
    preview: str
    folded: bool
    size: str


def readable_body(raw: str) -> Body:
    """Pretty-print JSON bodies; mark long ones to be folded, with a short preview."""
    text = raw
    try:
        parsed = json.loads(raw)
    except ValueError:
        pass
    else:
        if isinstance(parsed, dict | list):
            text = json.dumps(parsed, indent=2, ensure_ascii=False)
    lines = text.splitlines()
    folded = len(text) > FOLD_CHARS or len(lines) > FOLD_LINES
    preview = "\n".join(lines[:PREVIEW_LINES])[: FOLD_CHARS // 2]
    size = f"{len(raw.encode()):,} bytes"
    return Body(text, preview, folded, size)


def status_phrase(code: int) -> str:
    """`Service Unavailable` for 503; empty for codes without a standard phrase."""
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return ""


def inline_markdown(text: str) -> Markup:
    """Help text with inline markdown (manifest descriptions carry `[links](https://…)`), as
    escaped HTML; links open in a new tab so that following one keeps the form."""
    html = inline_markdown_html(text).replace(
        "<a href=", '<a target="_blank" rel="noopener noreferrer" href='
    )
    return Markup(html)  # noqa: S704 - inline_markdown_html escapes every piece of the text


def dom_id(name: str) -> str:
    """A field name as an element id: `statements[0].resources` → `f-statements-0-resources`."""
    return "f-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def hue(key: str) -> int:
    """One of twelve stable colours for an integration's initial."""
    return hashlib.sha256(key.encode()).digest()[0] % 12


def _static_versions() -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in STATIC_DIR.iterdir()
        if path.is_file()
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    versions = _static_versions()
    env.globals["static"] = lambda name: f"/static/{name}?v={versions.get(name, '0')}"
    env.globals["timestamp"] = timestamp
    env.globals["dom_id"] = dom_id
    env.globals["hue"] = hue
    env.globals["health"] = health_of
    env.filters["readable_body"] = readable_body
    env.filters["status_phrase"] = status_phrase
    env.filters["thousands"] = lambda n: f"{n:,}"
    env.filters["inline_markdown"] = inline_markdown
    return env


class Renderer:
    """Renders templates into HTML responses with the page headers."""

    def __init__(self) -> None:
        self.env = _environment()

    def page(
        self, request: Request, name: str, context: dict[str, Any], *, status: int = 200
    ) -> HTMLResponse:
        """A full page or fragment; `context` gets `request` added."""
        html = self.env.get_template(name).render(request=request, **context)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


@functools.cache
def renderer() -> Renderer:
    """The renderer, built on first use (templates are read from the package)."""
    return Renderer()
