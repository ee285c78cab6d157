"""Request plumbing shared by the routers: the runtime, JSON bodies and authentication."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from pushgate.domain import Role
from pushgate.errors import Forbidden, InvalidRequest, RateLimited, RequestError, Unauthorized
from pushgate.limits import parse_json
from pushgate.runtime import Runtime


async def runtime(request: Request) -> Runtime:
    """The process runtime built at start-up (async: FastAPI runs a plain function in a
    thread pool, a hop per request for nothing)."""
    found: Runtime = request.app.state.runtime
    return found


RuntimeDep = Annotated[Runtime, Depends(runtime)]

# The `ApiKey` security scheme of the OpenAPI document (LaunchDarkly's name for it, so generated
# clients take the token the same way). It only describes: `authenticate` reads the header.
API_KEY = APIKeyHeader(
    name="Authorization",
    scheme_name="ApiKey",
    description="An access token (`pushgate token create`); `Bearer <token>` is accepted too.",
    auto_error=False,
)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """LaunchDarkly's error body."""
    return JSONResponse({"code": code, "message": message}, status_code=status)


def request_error_response(error: RequestError) -> JSONResponse:
    """The answer to a request that was wrong (or must wait: Retry-After)."""
    response = error_response(error.status, error.code, error.message)
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def json_body(request: Request) -> Any:
    """The request body parsed as JSON within `limits.parse_json`'s rules; a clear 400 when it
    is not (the size limit is the `middleware.BodyLimit`'s, 413)."""
    body = await request.body()
    if not body:
        raise InvalidRequest("body: a JSON body is required")
    return parse_json(body)


async def authenticate(request: Request, rt: Runtime) -> Role:
    """The role of the request's token (`Authorization: <token>` or `Bearer <token>`)."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise Unauthorized("an Authorization header with an access token is required")
    scheme, _, rest = header.partition(" ")
    value = rest.strip() if scheme.lower() == "bearer" and rest else header
    token = await rt.sign_in(value, client_address(request))
    if token is None:
        raise Unauthorized("the access token is not valid")
    return token.role


def client_address(request: Request) -> str:
    """The client's address, as uvicorn gives it: the peer, or the address a trusted proxy
    names in X-Forwarded-For (`PUSHGATE_TRUSTED_PROXIES`)."""
    return request.client.host if request.client is not None else "unknown"


async def authorize(request: Request, rt: Runtime, role: Role) -> Role:
    """The request's role, when it allows what `role` may do; else Unauthorized/Forbidden."""
    held = await authenticate(request, rt)
    if not held.allows(role):
        raise Forbidden(f"this action needs a {role.value} token; yours is {held.value}")
    return held


def require(role: Role) -> Any:
    """A dependency that lets through tokens with at least `role`."""

    async def check(
        request: Request, rt: RuntimeDep, _described: Annotated[str | None, Security(API_KEY)]
    ) -> Role:
        return await authorize(request, rt, role)

    return Depends(check)


Reader = require(Role.READER)
Writer = require(Role.WRITER)
Admin = require(Role.ADMIN)
