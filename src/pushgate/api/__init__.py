"""The JSON API: LaunchDarkly-compatible where LaunchDarkly has one, `{"code","message"}` errors."""

from __future__ import annotations

import functools

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from pushgate.api import (
    attempts,
    configurations,
    docs,
    events,
    manifests,
    openapi,
    sources,
    system,
    tokens,
)
from pushgate.api.deps import error_response, request_error_response
from pushgate.api.failures import FailureMiddleware
from pushgate.errors import RequestError
from pushgate.middleware import Dispatch

_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "optimistic_locking_error",
    413: "request_too_large",
    415: "unsupported_media_type",
}


async def _request_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestError)
    return request_error_response(error)


TAGS = [
    {
        "name": configurations.TAG,
        "description": "Configurations, as LaunchDarkly's API has them: same paths, bodies, "
        "status codes and errors.",
    },
    {"name": "Events", "description": "Change events in, with an access token."},
    {
        "name": "Sources",
        "description": "Signed endpoints that LaunchDarkly's webhooks (or any Standard Webhooks "
        "sender) post events to, without an access token (admin).",
    },
    {"name": "Catalog", "description": "The integrations and their forms."},
    {"name": "Access tokens", "description": "Who may call the API (admin)."},
    {"name": "Operations", "description": "Liveness, readiness and metrics; no token."},
]


# The methods a 405's `Allow` may name: pushgate's routes use no others.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path. Starlette's 405 names only the methods of
    the first route whose path matched, and pushgate has a route per method: so each method is
    tried against every route."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = _CODES.get(error.status_code, "error")
    response = error_response(error.status_code, code, str(error.detail))
    if error.headers:
        response.headers.update(error.headers)
    if error.status_code == 405:
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
        for problem in error.errors()
    ]
    return error_response(400, "invalid_request", "; ".join(problems) or "invalid request")


def install(app: FastAPI) -> None:
    """Register the error mapping and every router on `app`."""
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # `POST /api/v2/events` skips the router and its exception layers (events.py), behind
    # every middleware: the failure middleware below and app.py's.
    app.add_middleware(Dispatch, routes={("POST", events.PATH): events.intake_app})
    # Anything else that raises: 503 when the database is away, else 500 (failures.py).
    app.add_middleware(FailureMiddleware)
    for module in (configurations, attempts, events, sources, manifests, tokens, system, docs):
        app.include_router(module.router)
    app.include_router(sources.ingest_router)
    app.openapi_tags = TAGS
    # FastAPI's documented way to shape the document (a method replaced on the instance).
    app.openapi = functools.partial(openapi.document, app)  # type: ignore[method-assign]
