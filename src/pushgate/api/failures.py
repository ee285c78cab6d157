"""The last word on a request that raised: 503 when the database is unreachable, else 500.

An ASGI middleware around every route (API and UI). It answers instead of re-raising, so the
server adds no second, plain-text traceback: an unexpected error is one structured log line
with its traceback inside; a database outage is one line when it begins and one when it ends
(`logs.Outage`), however many requests fail meanwhile. Nothing is answered 202 that was not
committed: a request that could not commit raises, and lands here.
"""

from __future__ import annotations

import json
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pushgate.runtime import Runtime
from pushgate.store import describe, is_unavailable

log = structlog.get_logger("pushgate.api")
# What a client is told to wait before trying again while the database is away (seconds).
RETRY_AFTER_SECONDS = 5
# While an outage lasts, a request that succeeds checks whether the database is back at most
# this often (seconds).
RECOVERY_CHECK_INTERVAL = 1.0
UNAVAILABLE_MESSAGE = "pushgate cannot reach its database right now; try again shortly"


class FailureMiddleware:
    """Answers 503 `service_unavailable` (with Retry-After) or 500 for a request that raised."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._checked = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as error:
            runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
            unavailable = is_unavailable(error)
            if unavailable and runtime is not None:
                runtime.outage.failed(describe(error), path=scope["path"])
            else:
                log.error(
                    "api.unexpected_error",
                    method=scope["method"],
                    path=scope["path"],
                    exc_info=error,
                )
            if not started:
                await _answer(scope, send, unavailable=unavailable)
            return
        await self._maybe_recovered(scope)

    async def _maybe_recovered(self, scope: Scope) -> None:
        runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
        if runtime is None or not runtime.outage.active:
            return
        now = time.monotonic()
        if now - self._checked < RECOVERY_CHECK_INTERVAL:
            return
        self._checked = now
        try:
            await runtime.store.ping()
        except Exception as error:
            if not is_unavailable(error):
                raise
            return
        runtime.outage.succeeded()


# Paths whose callers are programs: they get the API's JSON error, not a page.
JSON_PATHS = ("/api/", "/ingest/")


async def _answer(scope: Scope, send: Send, *, unavailable: bool) -> None:
    api = scope["path"].startswith(JSON_PATHS)
    status = 503 if unavailable else 500
    if api:
        code, message = (
            ("service_unavailable", UNAVAILABLE_MESSAGE)
            if unavailable
            else ("internal_server_error", "an unexpected error occurred")
        )
        body = json.dumps({"code": code, "message": message}).encode()
        content_type = b"application/json"
    else:
        text = UNAVAILABLE_MESSAGE if unavailable else "Something went wrong on our side."
        body = f"<!doctype html><title>pushgate</title><p>{text}</p>".encode()
        content_type = b"text/html; charset=utf-8"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if unavailable:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
