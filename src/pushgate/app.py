"""The ASGI application: the JSON API, the web UI, health and metrics over one runtime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

import pushgate
import pushgate.web
from pushgate import api
from pushgate.clock import Clock, system_clock
from pushgate.middleware import BodyLimit, PageHeaders, RequestMetrics
from pushgate.runtime import ensure_admin_token, running
from pushgate.settings import Settings


def create_app(
    settings: Settings,
    *,
    with_worker: bool = True,
    clock: Clock = system_clock,
    own_process: bool = False,
) -> FastAPI:
    """The ASGI application: JSON API under /api/v2, web UI, health and metrics.

    `own_process`: the app is the process's reason to be (`pushgate serve`; see `running`).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(
            settings,
            with_worker=with_worker,
            clock=clock,
            beside_api=True,
            own_process=own_process,
        ) as runtime:
            await ensure_admin_token(runtime)
            app.state.runtime = runtime
            yield

    app = FastAPI(
        title="pushgate",
        version=pushgate.__version__,
        lifespan=lifespan,
        docs_url=None,  # api/docs.py serves it, with a Content-Security-Policy
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # pushgate has no OAuth2 sign-in
        openapi_url="/api/openapi.json",
    )
    api.install(app)
    pushgate.web.install(app)
    app.add_middleware(PageHeaders)
    app.add_middleware(BodyLimit, limit=settings.request_size_limit)
    app.add_middleware(RequestMetrics, access_log=settings.access_log)
    return app
