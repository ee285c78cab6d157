"""The API's description held to its behaviour: every answer the tests see is checked against it.

`Recorder` wraps the app of every test server (`conftest.start_server`) and keeps each request
and its answer. When the server stops, `problems()` checks them with openapi-core against the
app's own OpenAPI document:

- every answer to a described operation must be described: its status, its content type, its
  body (`additionalProperties: false` makes an undescribed member a problem) and its headers;
- every request that was accepted (2xx) must fit the described request: what pushgate accepts,
  a client generated from the description can send;
- every 405 carries `Allow`, and no answer anywhere is a 422.

Paths the document does not describe (the web UI, static files, the docs page) are skipped.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Requests are kept whole up to this size: larger ones are the size-limit tests' (413), whose
# requests are not checked.
KEPT_BODY = 1024 * 1024


@dataclass
class Exchange:
    """One request and its answer, as they crossed the server's edge."""

    method: str
    path: str
    query: str
    request_headers: dict[str, str]
    request_body: bytearray = field(default_factory=bytearray)
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytearray = field(default_factory=bytearray)

    def __str__(self) -> str:
        body = bytes(self.response_body[:300]).decode(errors="replace")
        return f"{self.method} {self.path} → {self.status} {body}"


class Recorder:
    """ASGI middleware that keeps every HTTP request and its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(
            scope["method"],
            scope["path"],
            scope["query_string"].decode("latin-1"),
            {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
        )
        self.exchanges.append(exchange)

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(exchange.request_body) <= KEPT_BODY:
                exchange.request_body += message.get("body", b"")
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.response_headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                }
            elif message["type"] == "http.response.body":
                exchange.response_body += message.get("body", b"")
            await send(message)

        await self.app(scope, receiving, sending)


@functools.cache
def _openapi(document: str) -> OpenAPI:
    return OpenAPI.from_dict(json.loads(document))


def problems(exchanges: list[Exchange], document: dict[str, Any]) -> list[str]:
    """What in these exchanges the document does not describe (empty: all is described)."""
    spec = _openapi(json.dumps(document, sort_keys=True))
    found = []
    for exchange in exchanges:
        if exchange.status == 0:
            continue  # the client went away before an answer
        if exchange.status == 422:
            found.append(f"a 422 (pushgate answers 400): {exchange}")
        if exchange.status == 405 and "allow" not in exchange.response_headers:
            found.append(f"a 405 without Allow: {exchange}")
        request = MockRequest(
            "http://pushgate.test",
            exchange.method,
            exchange.path,
            args=dict(parse_qsl(exchange.query, keep_blank_values=True)),
            headers=exchange.request_headers,
            data=bytes(exchange.request_body),
            # pushgate reads every body as JSON, whatever its Content-Type says (as before).
            content_type="application/json",
        )
        response = MockResponse(
            bytes(exchange.response_body),
            status_code=exchange.status,
            headers=exchange.response_headers,
            content_type=exchange.response_headers.get("content-type", ""),
        )
        try:
            spec.validate_response(request, response)
        except (PathNotFound, OperationNotFound):
            continue  # not part of the API (the UI, static files), or a 405
        except Exception as error:
            found.append(f"answer not as described: {exchange}: {_reason(error)}")
            continue
        accepted = 200 <= exchange.status < 300 and len(exchange.request_body) <= KEPT_BODY
        if accepted:
            try:
                spec.validate_request(request)
            except Exception as error:
                found.append(f"accepted request not as described: {exchange}: {_reason(error)}")
    return found


def _reason(error: BaseException) -> str:
    reasons = [repr(error)]
    cause = error.__cause__
    while cause is not None:
        reasons.append(repr(cause)[:500])
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            reasons.extend(str(e.message)[:300] for e in schema_errors)
        cause = cause.__cause__
    return " ← ".join(reasons)
