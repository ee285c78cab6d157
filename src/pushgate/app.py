"""The composition root: builds every part from the settings and wires API, UI and worker."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from fastapi import FastAPI

from pushgate.clock import Clock, system_clock
from pushgate.configurations import Services
from pushgate.delivery.engine import Engine
from pushgate.delivery.transport import Transport
from pushgate.delivery.worker import Worker
from pushgate.integrations import Catalog, default_catalog
from pushgate.integrations.base import Endpoints
from pushgate.sealing import load_secret_box
from pushgate.settings import Settings
from pushgate.store import STATUS_SHARDS, Role, Store, TokenRow

log = structlog.get_logger("pushgate.app")
# The id under which PUSHGATE_ADMIN_TOKEN appears (stored token ids are 24 hex digits).
ADMIN_TOKEN_ID = "env-admin"
INITIAL_TOKEN_FILE = "initial-admin-token"


@dataclass
class Runtime:
    """Everything a running pushgate process holds, built once at start-up."""

    settings: Settings
    services: Services
    engine: Engine
    clock: Clock
    worker: Worker | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def store(self) -> Store:
        """The database stores."""
        return self.services.store

    @property
    def catalog(self) -> Catalog:
        """The integrations this install knows."""
        return self.services.catalog

    async def token(self, value: str) -> TokenRow | None:
        """The token an access-token value belongs to, or None; PUSHGATE_ADMIN_TOKEN is the
        admin token with id `ADMIN_TOKEN_ID`. The one check behind the API and the web UI."""
        admin = self.settings.admin_token
        if admin is not None and hmac.compare_digest(
            value.encode(), admin.get_secret_value().encode()
        ):
            return TokenRow(ADMIN_TOKEN_ID, "PUSHGATE_ADMIN_TOKEN", Role.ADMIN, 0)
        return await self.store.tokens.find(value)

    def wake_worker(self) -> None:
        """Tell the in-process worker that deliveries were enqueued."""
        if self.worker is not None:
            self.worker.wake()


@contextlib.asynccontextmanager
async def running(
    settings: Settings, *, with_worker: bool, clock: Clock = system_clock
) -> AsyncIterator[Runtime]:
    """Open the database (migrated), the transport and, optionally, a running worker.

    Each process counts outcomes on a random status shard, so workers on other processes and
    hosts seldom update the same counter row (and when they do, the counts stay exact).
    """
    store = await Store.open(settings, status_shard=random.randrange(STATUS_SHARDS))
    transport = Transport(settings)
    services = Services(default_catalog(settings.manifest_dirs), store, load_secret_box(settings))
    engine = Engine(
        transport, Endpoints(settings.endpoint_overrides), link_base_url=settings.link_base_url
    )
    runtime = Runtime(settings, services, engine, clock)
    stop = asyncio.Event()
    if with_worker:
        runtime.worker = Worker(services, engine, settings, clock)
        runtime.tasks.append(asyncio.create_task(runtime.worker.run(stop)))
    try:
        yield runtime
    finally:
        stop.set()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        await transport.close()
        await store.close()


async def ensure_admin_token(runtime: Runtime) -> None:
    """On a database with no token and no PUSHGATE_ADMIN_TOKEN, create a first admin token.

    Its value goes to a 0600 file in the data directory, never to the log.
    """
    settings = runtime.settings
    if settings.admin_token is not None or await runtime.store.tokens.all():
        return
    _, value = await runtime.store.tokens.create(
        name="initial admin", role=Role.ADMIN, now=runtime.clock()
    )
    path = settings.data_dir / INITIAL_TOKEN_FILE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    log.warning("auth.initial_token_created", path=str(path.resolve()))


def create_app(
    settings: Settings, *, with_worker: bool = True, clock: Clock = system_clock
) -> FastAPI:
    """The ASGI application: JSON API under /api/v2, web UI, health and metrics."""
    import pushgate.web
    from pushgate.api import install

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, with_worker=with_worker, clock=clock) as runtime:
            await ensure_admin_token(runtime)
            app.state.runtime = runtime
            yield

    app = FastAPI(
        title="pushgate",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    install(app)
    pushgate.web.install(app)
    return app
