"""ASGI middleware around the whole app (API and UI): the body size limit, HTML headers, and
the HTTP metrics and access log.

`BodyLimit` counts a request body while it streams in. A declared `Content-Length` over the
limit is answered 413 before the app runs; a body without one (chunked) is cut off the moment it
passes the limit: the next read raises `RequestTooLarge`, which the API answers 413
`{"code": "request_too_large"}` and the UI as a page. Nothing ever holds more than the limit
plus one chunk.

`PageHeaders` gives every HTML answer that does not set its own Content-Security-Policy the
UI's strict one (and `nosniff` to every answer), so no page can go out without a policy.

`RequestMetrics`, outermost, counts and times every answer by method, route template and status
(never the path itself: ids would make a series each) and, with PUSHGATE_ACCESS_LOG, logs it.
"""

from __future__ import annotations

import time

import structlog
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pushgate import metrics
from pushgate.errors import RequestTooLarge
from pushgate.web.templating import PAGE_HEADERS

log = structlog.get_logger("pushgate.http")
# The route label of a request no route matched (a 404), and the method label of a method
# HTTP does not define: clients cannot make new series.
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Answers that a browser renders as a document, and so may run scripts.
_DOCUMENT_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml")


def too_large(limit: int) -> RequestTooLarge:
    """The error for a body over `limit` bytes."""
    return RequestTooLarge(
        f"body: larger than {limit} bytes, the request size limit (PUSHGATE_REQUEST_SIZE_LIMIT)"
    )


class BodyLimit:
    """Refuse request bodies over `limit` bytes while they stream in."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            error = too_large(self.limit)
            answer = JSONResponse(
                {"code": error.code, "message": error.message},
                status_code=error.status,
                headers={"Connection": "close"},
            )
            await answer(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise too_large(self.limit)
            return message

        await self.app(scope, limited, send)


class PageHeaders:
    """Add the UI's Content-Security-Policy to HTML answers that carry none; `nosniff` to all."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if headers.get("Content-Type", "").startswith(_DOCUMENT_TYPES):
                    for name, value in PAGE_HEADERS.items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


class RequestMetrics:
    """`pushgate_http_requests_total` and `pushgate_http_request_duration_seconds` for every
    answer; with `access_log`, one `http.request` line each: method, path (never the query,
    which may carry a secret), route, status, duration and client address."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raised before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else OTHER_METHOD
            # The router leaves the route it matched in the scope (Starlette and FastAPI).
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(method, route, str(status)).observe(seconds)
            if self.access_log:
                client = scope.get("client")
                log.info(
                    "http.request",
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(seconds * 1000, 1),
                    client=client[0] if client else None,
                )


class Dispatch:
    """Hands the requests of chosen routes, by (method, path), straight to an app of their
    own; everything else goes on to `app`. For the route producers hit most: placed innermost,
    it keeps every other middleware in front of that app too."""

    def __init__(self, app: ASGIApp, *, routes: dict[tuple[str, str], ASGIApp]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            own = self.routes.get((scope["method"], scope["path"]))
            if own is not None:
                await own(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
