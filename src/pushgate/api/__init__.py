"""The JSON API: LaunchDarkly-compatible where LaunchDarkly has one, `{"code","message"}` errors."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pushgate.api import configurations, docs, events, manifests, system, tokens
from pushgate.api.failures import FailureMiddleware
from pushgate.errors import RateLimited, RequestError

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


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """LaunchDarkly's error body."""
    return JSONResponse({"code": code, "message": message}, status_code=status)


async def _request_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestError)
    response = error_response(error.status, error.code, error.message)
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = _CODES.get(error.status_code, "error")
    return error_response(error.status_code, code, str(error.detail))


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
    # Anything else that raises: 503 when the database is away, else 500 (failures.py).
    app.add_middleware(FailureMiddleware)
    app.router.routes.append(events.intake)  # before the routers below: see events.py
    for module in (configurations, events, manifests, tokens, system, docs):
        app.include_router(module.router)
