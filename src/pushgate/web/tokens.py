"""The Tokens page (Organization settings, admin tokens only): list, create, revoke.

POST, then redirect, then GET, so a reload resubmits nothing. A new token's value is shown
once: the create answer carries it to the next page in a cookie that only that page receives
(`path`, HttpOnly, a minute at most), and the page clears the cookie as it shows the value.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from pushgate.api.deps import RuntimeDep
from pushgate.domain import Role
from pushgate.errors import Forbidden, InvalidRequest
from pushgate.web.routing import WebRoute, see_other
from pushgate.web.session import Session, SessionDep, WriterDep
from pushgate.web.templating import renderer

router = APIRouter(route_class=WebRoute, include_in_schema=False)
TOKENS = "/settings/tokens"
NEW_TOKEN_COOKIE = "pushgate_new_token"
# How long the new value waits for the page that shows it (seconds).
NEW_TOKEN_SECONDS = 60
MAX_NAME = 256
Text = Annotated[str, Query(max_length=MAX_NAME)]


def _admin(session: Session) -> None:
    if not session.is_admin:
        raise Forbidden(
            f"Tokens are for admin tokens; yours is a {session.identity.role.value} token."
        )


@router.get(TOKENS)
async def tokens_page(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    created: Text = "",
    revoked: Text = "",
) -> Response:
    """Every token (name, role, created), the create form, and a new token's value once."""
    _admin(session)
    value = request.cookies.get(NEW_TOKEN_COOKIE) if created else None
    flash = f"Revoked “{revoked}”." if revoked else None
    context = {
        "session": session,
        "tokens": await rt.store.tokens.all(),
        "roles": [role.value for role in Role],
        "created": created,
        "value": value,
        "flash": flash,
    }
    response = renderer().page(request, "tokens.html", context)
    response.headers["Cache-Control"] = "no-store"
    response.delete_cookie(NEW_TOKEN_COOKIE, path=TOKENS)
    return response


@router.post(TOKENS)
async def create_token(request: Request, session: WriterDep, rt: RuntimeDep) -> Response:
    """Create a token; its value goes to the next page only."""
    _admin(session)
    form = await request.form()
    name = str(form.get("name", "")).strip()[:MAX_NAME]
    if not name:
        raise InvalidRequest("A token needs a name: who or what will use it.")
    try:
        role = Role(str(form.get("role", "reader")))
    except ValueError:
        raise InvalidRequest("The role is reader, writer or admin.") from None
    row, value = await rt.store.tokens.create(name=name, role=role, now=rt.clock())
    response = see_other(f"{TOKENS}?created={row.id}")
    response.set_cookie(
        NEW_TOKEN_COOKIE,
        value,
        max_age=NEW_TOKEN_SECONDS,
        path=TOKENS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post(TOKENS + "/{token_id}/revoke")
async def revoke_token(token_id: str, session: WriterDep, rt: RuntimeDep) -> Response:
    """Revoke a token: whoever used it is refused from now on."""
    _admin(session)
    token = await rt.store.tokens.get(token_id)
    await rt.store.tokens.revoke(token_id)
    name = token.name if token is not None else token_id
    return see_other(f"{TOKENS}?revoked={name}")
