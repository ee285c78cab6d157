"""The web UI: server-rendered pages over the same domain functions as the API.

    /login, /logout                                  sign in with an access token; sign out
    /settings                                        Organization settings
    /settings/integrations                           the catalog and each integration's status table
    /settings/integrations/{key}/new                 the Add configuration panel
    /settings/integrations/{key}/{id}/edit           the Edit configuration panel
    /settings/integrations/{key}[/{id}]/validate     Validate Connection (from the page's script)
    /settings/integrations/{key}/{id}/activity       attempts; the old …/errors redirects here
    /settings/integrations/{key}/{id}/resend         resend one event; …/replay resends the failed
    /settings/sources                                event sources (admin tokens)
    /settings/tokens                                 access tokens: list, create, revoke (admin)
    /static/…                                        one stylesheet, one script

Sessions and CSRF: `session.py`. Templates: `templates/`. docs/ui.md describes the pages.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pushgate.web import activity, editing, pages, tokens
from pushgate.web.templating import STATIC_DIR


def install(app: FastAPI) -> None:
    """Register the UI's routes and static files on `app`."""
    app.include_router(pages.router)
    app.include_router(editing.router)
    app.include_router(activity.router)
    app.include_router(tokens.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
