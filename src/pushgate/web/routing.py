"""How web routes answer errors: pages for people, `{"code","message"}` for the page's script.

The API's exception handlers answer JSON for the whole app; web routes use `WebRoute`, which
catches the domain's `RequestError`s first. A browser without a session is sent to /login; a
`fetch()` from the page (it asks for JSON) gets the API's error shape instead.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute

from pushgate.errors import InvalidRequest, RequestError, Unauthorized
from pushgate.store import is_unavailable
from pushgate.web.session import current_session
from pushgate.web.templating import renderer

log = structlog.get_logger("pushgate.web")
_UNEXPECTED = "pushgate could not show this page because of an internal error; it was logged"
_TITLES = {
    400: "That request did not make sense",
    401: "Sign in to continue",
    403: "Not allowed",
    404: "Not found",
    409: "Changed by someone else",
}


class _Unexpected(RequestError):
    code = "internal_server_error"
    status = 500


def wants_json(request: Request) -> bool:
    """Whether the caller is the page's script (it asks for JSON) rather than a navigation."""
    return "application/json" in request.headers.get("Accept", "")


def see_other(url: str) -> RedirectResponse:
    """A 303 redirect: after a POST, the browser GETs `url`."""
    return RedirectResponse(url, status_code=303)


def local_path(candidate: str | None, default: str = "/") -> str:
    """`candidate` if it is a path on this site, else `default` (no open redirects)."""
    if (
        candidate
        and candidate.startswith("/")
        and not candidate.startswith("//")
        and "\\" not in candidate
        and candidate.isprintable()
    ):
        return candidate
    return default


async def error_response(request: Request, error: RequestError) -> Response:
    """The answer to a domain error raised while serving a web route."""
    if wants_json(request):
        return JSONResponse({"code": error.code, "message": error.message}, error.status)
    if isinstance(error, Unauthorized):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = request.headers.get("Referer", "/")
            target = local_path(target.removeprefix(str(request.base_url).rstrip("/")))
        return see_other("/login?next=" + quote(target, safe="/"))
    # After an internal error, show a plain page: the session lookup may fail the same way.
    internal = error.status >= 500
    session = None if internal else await current_session(request, request.app.state.runtime)
    return renderer().page(
        request,
        "problem.html",
        {
            "session": session,
            "status": error.status,
            "title": _TITLES.get(error.status, "Something went wrong"),
            "message": error.message,
        },
        status=error.status,
    )


class WebRoute(APIRoute):
    """An APIRoute whose domain errors become pages (or JSON errors for the page's script)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestError as error:
                return await error_response(request, error)
            except RequestValidationError as error:
                problems = "; ".join(str(problem["msg"]) for problem in error.errors())
                return await error_response(request, InvalidRequest(problems or "bad request"))
            except Exception as error:  # a bug: log it with context, show a page that leaks nothing
                if is_unavailable(error):
                    raise  # the database is away: api/failures.py answers 503, logged once
                log.error(
                    "web.unexpected_error",
                    path=request.url.path,
                    method=request.method,
                    exc_info=error,
                )
                return await error_response(request, _Unexpected(_UNEXPECTED))

        return handle
