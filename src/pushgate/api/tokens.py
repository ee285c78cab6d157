"""`/api/v2/tokens`: admin-only management of access tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from pushgate.api import shapes
from pushgate.api.deps import Admin, RuntimeDep, json_body
from pushgate.api.openapi import AUTHENTICATED, answers, request_body
from pushgate.domain import Role
from pushgate.errors import InvalidRequest
from pushgate.limits import NAME_LIMIT, check_text
from pushgate.store import TokenRow

router = APIRouter(prefix="/api/v2/tokens", dependencies=[Admin], tags=["Access tokens"])
# Every call here needs an admin token.
ADMIN = AUTHENTICATED | {403}


def _json(row: TokenRow) -> dict[str, Any]:
    return {"_id": row.id, "name": row.name, "role": row.role.value, "creationDate": row.created_at}


@router.get(
    "",
    operation_id="getTokens",
    summary="List the access tokens",
    response_model=None,
    responses=answers(200, shapes.Tokens, "Every token, never its value", errors=ADMIN),
)
async def list_tokens(rt: RuntimeDep) -> dict[str, Any]:
    """Every token (never its value)."""
    return {"items": [_json(row) for row in await rt.store.tokens.all()]}


@router.post(
    "",
    status_code=201,
    operation_id="createToken",
    summary="Create an access token",
    response_model=None,
    responses=answers(
        201, shapes.TokenCreated, "The new token and its value", errors=ADMIN | {400, 413}
    ),
    openapi_extra=request_body(
        shapes.TokenPost, description="Who it is for, and its role", example={"name": "ci"}
    ),
)
async def create_token(request: Request, rt: RuntimeDep) -> JSONResponse:
    """Create a token: body `{"name", "role"}`; the answer holds its value, shown only once."""
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        raise InvalidRequest("name: required, a non-empty string")
    name = check_text(body["name"], "name", limit=NAME_LIMIT)
    try:
        role = Role(body.get("role", "reader"))
    except (ValueError, TypeError):
        raise InvalidRequest("role: must be reader, writer or admin") from None
    row, value = await rt.store.tokens.create(name=name, role=role, now=rt.clock())
    return JSONResponse({**_json(row), "token": value}, status_code=201)


@router.delete(
    "/{id}",
    status_code=204,
    operation_id="deleteToken",
    summary="Revoke an access token",
    response_model=None,
    responses=answers(204, None, "Revoked; its UI sessions end", errors=ADMIN | {404}),
)
async def revoke_token(
    token_id: Annotated[str, Path(alias="id", description="The token's `_id`")], rt: RuntimeDep
) -> Response:
    """Revoke a token."""
    await rt.store.tokens.revoke(token_id)
    return Response(status_code=204)
