"""Pages to read: sign in and out, Organization settings, Integrations (Activity: activity.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from pushgate import sources
from pushgate.api.deps import RuntimeDep, client_address
from pushgate.api.sources import base_url
from pushgate.configurations import health_of
from pushgate.domain import HealthState
from pushgate.errors import Forbidden, RateLimited
from pushgate.integrations.base import Integration
from pushgate.runtime import Runtime
from pushgate.store import ConfigurationRow
from pushgate.store.rollup import HOUR_MS, combined
from pushgate.web import charts
from pushgate.web.routing import WebRoute, local_path, see_other
from pushgate.web.session import (
    CSRF_FIELD,
    Session,
    SessionDep,
    check_csrf,
    check_login_nonce,
    current_session,
    end_session,
    identify,
    login_nonce,
    signer,
    start_session,
)
from pushgate.web.templating import renderer

router = APIRouter(route_class=WebRoute, include_in_schema=False)
INTEGRATIONS = "/settings/integrations"
SOURCES = "/settings/sources"


@dataclass(frozen=True, slots=True)
class IntegrationView:
    """One catalog entry on the Integrations page, with its configurations."""

    integration: Integration[Any]
    rows: list[ConfigurationRow]
    expanded: bool
    sparklines: dict[str, Markup] = field(default_factory=dict)  # by configuration id

    def troubled(self) -> dict[str, int]:
        """How many of its configurations are paused, off or failing (shown on the row)."""
        states = [health_of(row).state for row in self.rows]
        return {
            state.value: states.count(state)
            for state in (HealthState.PAUSED, HealthState.OFF, HealthState.FAILING)
            if state in states
        }


async def _sparklines(rt: Runtime, rows: list[ConfigurationRow]) -> dict[str, Markup]:
    """Each configuration's last 24 hours, by hour, drawn small for its status-table row."""
    drawn = {}
    for row in rows:
        hours = await rt.store.configurations.activity(
            row.id, now=rt.clock(), size_ms=HOUR_MS, count=24
        )
        total = combined(hours)
        label = f"Last 24 hours: {total.successes:,} successes, {total.errors:,} errors"
        drawn[row.id] = charts.sparkline(hours, label=label)
    return drawn


def _login_page(
    request: Request, rt: Runtime, *, next_path: str, message: str | None, status: int = 200
) -> HTMLResponse:
    nonce = login_nonce(request, rt.clock())
    context = {"session": None, "next": next_path, "message": message, "nonce": nonce.value}
    response = renderer().page(request, "login.html", context, status=status)
    nonce.remember(request, response)
    return response


@router.get("/login")
async def login_form(
    request: Request,
    rt: RuntimeDep,
    next_path: Annotated[str, Query(alias="next")] = "/",
    signed_out: bool = False,
) -> Response:
    """The sign-in form (a signed-in browser goes straight on)."""
    if await current_session(request, rt) is not None:
        return see_other(local_path(next_path))
    message = "You signed out." if signed_out else None
    return _login_page(request, rt, next_path=local_path(next_path), message=message)


@router.post("/login")
async def login(request: Request, rt: RuntimeDep) -> Response:
    """Check the access token and start a session."""
    form = await request.form()
    token, nonce, target = (str(form.get(name) or "") for name in ("token", CSRF_FIELD, "next"))
    target = local_path(target)
    if not check_login_nonce(request, nonce, rt.clock()):
        message = "The sign-in form expired or did not come from this site. Try again."
        return _login_page(request, rt, next_path=target, message=message, status=403)
    try:
        identity = (
            await identify(rt, token.strip(), signer(request), client_address(request))
            if token.strip()
            else None
        )
    except RateLimited as error:
        message = (
            "Too many wrong access tokens were tried from your address. "
            f"Wait {error.retry_after} seconds, then try again."
        )
        page = _login_page(request, rt, next_path=target, message=message, status=429)
        page.headers["Retry-After"] = str(error.retry_after)
        return page
    if identity is None:
        message = "That access token is not valid. Check it and try again."
        return _login_page(request, rt, next_path=target, message=message, status=401)
    response = see_other(target)
    await start_session(request, response, rt, identity)
    return response


@router.post("/logout")
async def logout(request: Request, rt: RuntimeDep) -> Response:
    """End the session on the server and in the browser (a session that already ended just
    goes to the sign-in page)."""
    session = await current_session(request, rt)
    if session is not None:
        await check_csrf(request, session)
    response = see_other("/login?signed_out=true")
    await end_session(response, rt, session)
    return response


@router.get("/")
async def home(_session: SessionDep) -> Response:
    """The only thing to see is Integrations."""
    return see_other(INTEGRATIONS)


@router.get("/settings")
async def settings(request: Request, session: SessionDep, rt: RuntimeDep) -> Response:
    """Organization settings: what there is to configure."""
    rows = await rt.store.configurations.all()
    context = {
        "session": session,
        "configuration_count": len(rows),
        "integration_count": len({row.integration_key for row in rows}),
        "catalog_count": len(list(rt.catalog)),
        "token_count": len(await rt.store.tokens.all()),
        "source_count": len(await rt.store.sources.all()) if session.is_admin else None,
    }
    return renderer().page(request, "settings.html", context)


@router.get(SOURCES)
async def sources_page(request: Request, session: SessionDep, rt: RuntimeDep) -> Response:
    """Event sources (admin tokens only, as in the API): where each takes events, how many it
    brought in, and its last one."""
    if not session.is_admin:
        raise Forbidden(
            f"Event sources are for admin tokens; yours is a {session.identity.role.value} token."
        )
    base = base_url(request, rt)
    rows = await rt.store.sources.all()
    views = [sources.source_json(row, base_url=base) for row in rows]
    context = {"session": session, "sources": list(zip(rows, views, strict=True))}
    return renderer().page(request, "sources.html", context)


async def integrations_page(
    request: Request,
    rt: Runtime,
    session: Session,
    *,
    expanded: str | None = None,
    panel: Any = None,
    flash: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The Integrations page, one integration expanded and the edit panel open if given."""
    by_key: dict[str, list[ConfigurationRow]] = {}
    for row in await rt.store.configurations.all():
        by_key.setdefault(row.integration_key, []).append(row)
    views = [
        IntegrationView(
            integration,
            rows := by_key.get(integration.key, []),
            integration.key == expanded,
            await _sparklines(rt, rows) if integration.key == expanded else {},
        )
        for integration in rt.catalog
    ]
    context = {"session": session, "views": views, "panel": panel, "flash": flash}
    return renderer().page(request, "integrations.html", context, status=status)


@router.get(INTEGRATIONS)
async def integrations(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    expanded: Annotated[str | None, Query(alias="open")] = None,
    saved: str | None = None,
    deleted: str | None = None,
) -> Response:
    """Every integration of the catalog; `?open=key` expands one (the no-script fallback).

    `saved=<id>` and `deleted=<name>` are set by the redirects after a change, for the message.
    """
    flash = None
    if saved and expanded in rt.catalog:
        rows = [row for row in await rt.store.configurations.all(expanded) if row.id == saved]
        flash = f"Saved “{rows[0].name}”." if rows else None
    elif deleted:
        flash = f"Deleted “{deleted}”."
    return await integrations_page(request, rt, session, expanded=expanded, flash=flash)


@router.get(INTEGRATIONS + "/{integration_key}/configurations")
async def status_table(
    request: Request, integration_key: str, session: SessionDep, rt: RuntimeDep
) -> Response:
    """The status table of one integration's configurations (fetched when expanded)."""
    integration = rt.catalog.get(integration_key)
    rows = await rt.store.configurations.all(integration_key)
    view = IntegrationView(integration, rows, expanded=True, sparklines=await _sparklines(rt, rows))
    return renderer().page(request, "_configurations.html", {"session": session, "view": view})
