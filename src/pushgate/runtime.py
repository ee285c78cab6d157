"""The runtime of a pushgate process, and the one place that builds it from the settings.

    running(settings) ─► Store.open (migrated) ─► Services (catalog, store, secret box)
                      ─► Transport ─► Engine ─► Worker (optional, started)

The app, the CLI, the benchmarks and the tests all build their parts here, so their copies of
the composition cannot drift. Nothing here knows HTTP routing: `app.py`, `api/` and `web/`
depend on this module, never the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import structlog

from pushgate.clock import Clock, system_clock
from pushgate.configurations import Services, seal_plain_secrets
from pushgate.datadir import write_private
from pushgate.delivery.engine import Engine
from pushgate.delivery.transport import Transport
from pushgate.delivery.worker import Worker
from pushgate.domain import Role
from pushgate.ingest import Ingestor
from pushgate.integrations import Catalog, default_catalog
from pushgate.integrations.base import Endpoints
from pushgate.logs import Outage
from pushgate.metrics import Gauges
from pushgate.outbound import OutboundPolicy
from pushgate.sealing import load_secret_box
from pushgate.settings import Settings
from pushgate.store import STATUS_SHARDS, Store, TokenRow
from pushgate.throttle import Throttle

log = structlog.get_logger("pushgate.runtime")
# The id under which PUSHGATE_ADMIN_TOKEN appears (stored token ids are 24 hex digits).
ADMIN_TOKEN_ID = "env-admin"
INITIAL_TOKEN_FILE = "initial-admin-token"


@dataclass
class Runtime:
    """Everything a running pushgate process holds, built once at start-up by `running`."""

    settings: Settings
    services: Services
    engine: Engine
    clock: Clock
    outage: Outage = field(default_factory=Outage)
    worker: Worker | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    throttle: Throttle = field(init=False)
    ingestor: Ingestor = field(init=False)
    gauges: Gauges = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = Throttle(self.clock)
        self.ingestor = Ingestor(self.services.store, self.clock, outage=self.outage)
        self.gauges = Gauges(
            self.store.backlog.measure,
            integrations=(integration.key for integration in self.catalog),
            clock=self.clock,
            outage=self.outage,
        )

    @property
    def store(self) -> Store:
        """The database stores."""
        return self.services.store

    @property
    def catalog(self) -> Catalog:
        """The integrations this install knows."""
        return self.services.catalog

    def new_worker(
        self,
        settings: Settings | None = None,
        *,
        owner: str | None = None,
        rand: Callable[[], float] | None = None,
    ) -> Worker:
        """A worker over this runtime's store and engine (not started); `settings` may differ
        in the worker's own knobs (concurrency, batch size, lease, grace)."""
        return Worker(
            self.services,
            self.engine,
            settings or self.settings,
            self.clock,
            owner=owner,
            rand=rand,
            outage=self.outage,
        )

    async def token(self, value: str) -> TokenRow | None:
        """The token an access-token value belongs to, or None; PUSHGATE_ADMIN_TOKEN is the
        admin token with id `ADMIN_TOKEN_ID`. The one check behind the API and the web UI."""
        admin = self.settings.admin_token
        if admin is not None and hmac.compare_digest(
            value.encode(), admin.get_secret_value().encode()
        ):
            return TokenRow(ADMIN_TOKEN_ID, "PUSHGATE_ADMIN_TOKEN", Role.ADMIN, 0)
        return await self.store.tokens.find(value)

    async def sign_in(self, value: str, client: str) -> TokenRow | None:
        """`token(value)`, slowed down per client address (`throttle.py`): `RateLimited` while
        `client` must wait after too many failures, which a wrong token adds to."""
        self.throttle.check(client)
        token = await self.token(value)
        if token is None:
            self.throttle.failed(client)
        else:
            self.throttle.succeeded(client)
        return token

    async def unready(self) -> str | None:
        """Why this process cannot serve now (the database does not answer), or None when it
        can: what /readyz says."""
        try:
            await self.store.ping()
        except Exception as error:  # any failure means "not ready", with the reason
            return type(error).__name__
        return None

    def wake_worker(self) -> None:
        """Tell the in-process worker that deliveries were enqueued."""
        if self.worker is not None:
            self.worker.wake()


# Net new objects between two collections of the youngest generation, in the processes of
# the CLI (Python's default is 700).
YOUNG_GENERATION_THRESHOLD = 10_000


def tune_collector() -> None:
    """Tune the garbage collector for a long-running process under load.

    What start-up made (modules, the app and its routes, models, compiled statements, the
    runtime) lives as long as the process: frozen, it stays out of the full passes. Scanning
    it stalled the event loop of `serve` for 60 to 120 ms every few seconds under load (the
    latency benchmark's p99); a full pass over what serving leaves takes about 10 ms. And a
    young pass runs after 10,000 new objects instead of 700: nearly everything a delivery or
    a request allocates is freed by reference counting, yet the young passes took 8 to 9 % of
    a worker's time (0.3 % now).

    For the processes of the CLI only: a frozen object is never freed, which a test process
    creating many runtimes must not do.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


# Deliveries per claim and per record of a worker inside `serve`, by default (see `running`).
BESIDE_API_CLAIM_BATCH = 25


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    *,
    with_worker: bool,
    clock: Clock = system_clock,
    catalog: Catalog | None = None,
    beside_api: bool = False,
    own_process: bool = False,
) -> AsyncIterator[Runtime]:
    """Open the database (migrated), the transport and, optionally, a running worker.

    `beside_api`: the worker shares the event loop with the API (`serve`). Unless
    PUSHGATE_CLAIM_BATCH_SIZE is set, it then claims and records `BESIDE_API_CLAIM_BATCH` per
    transaction: SQLite's transactions run on the loop, and a shorter one keeps the API's
    answers quick (p50 POST → arrival about 5 ms instead of 7 to 13 at 343 POSTs/s) for about 5 %
    of drain rate.

    `own_process`: the runtime is the process's reason to be (`serve`, `worker`); once it is
    up, the garbage collector is tuned for it (`tune_collector`).

    Each process counts outcomes on a random status shard, so workers on other processes and
    hosts seldom update the same counter row (and when they do, the counts stay exact).
    """
    store = await Store.open(settings, status_shard=random.randrange(STATUS_SHARDS))
    transport = Transport(settings)
    try:
        services = Services(
            catalog or default_catalog(settings.manifest_dirs),
            store,
            load_secret_box(settings),
            OutboundPolicy(settings.outbound_allow),
        )
        await seal_plain_secrets(services, now=clock())
        engine = Engine(
            transport, Endpoints(settings.endpoint_overrides), link_base_url=settings.link_base_url
        )
        runtime = Runtime(settings, services, engine, clock)
        stop = asyncio.Event()
        if with_worker:
            own = settings
            if beside_api and "claim_batch_size" not in settings.model_fields_set:
                own = settings.model_copy(update={"claim_batch_size": BESIDE_API_CLAIM_BATCH})
            runtime.worker = runtime.new_worker(own)
            runtime.tasks.append(asyncio.create_task(runtime.worker.run(stop)))
        if own_process:
            tune_collector()
        try:
            yield runtime
        finally:
            stop.set()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
    finally:
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
    write_private(path, value + "\n")
    log.warning("auth.initial_token_created", path=str(path.resolve()))
