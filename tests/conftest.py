"""Shared fixtures: real databases, a real pushgate server on loopback, real HTTP receivers.

Every test that takes `database` (directly or through `settings`, `settings_factory` or
`server`) runs twice: on a fresh SQLite file and on a fresh PostgreSQL schema that is dropped
afterwards. PostgreSQL is `PUSHGATE_TEST_POSTGRES_URL` (default: the local server). When it
cannot be reached the PostgreSQL runs are skipped with the reason, except under `CI=true`, where
they fail. A module pins one backend with `pytestmark = pytest.mark.parametrize("backend",
["postgresql"])`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import uvicorn
from aiohttp import web

import contract
from pushgate.app import create_app
from pushgate.clock import ManualClock
from pushgate.delivery.worker import Worker
from pushgate.runtime import Runtime
from pushgate.settings import Settings

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
SECRET_KEY = "k" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


POSTGRES_URL = os.environ.get(
    "PUSHGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# Small pools: a test starts several processes against one server (max_connections 100).
TEST_POOL_SIZE = 4
_postgres_unreachable: list[str] = []


@dataclass
class Database:
    """One test's own database: a SQLite file, or a PostgreSQL schema."""

    backend: str
    data_dir: Path
    url: str = ""  # empty: SQLite in data_dir
    schema: str | None = None

    def settings(self) -> dict[str, Any]:
        """The Settings fields that point at this database."""
        values: dict[str, Any] = {"data_dir": self.data_dir}
        if self.backend == "postgresql":
            values.update(
                database_url=self.url,
                database_schema=self.schema,
                database_pool_size=TEST_POOL_SIZE,
                database_max_overflow=TEST_POOL_SIZE,
            )
        return values

    def env(self) -> dict[str, str]:
        """The same, as `PUSHGATE_*` environment variables for a pushgate process."""
        return {f"PUSHGATE_{name.upper()}": str(value) for name, value in self.settings().items()}

    async def stored_bytes(self) -> bytes:
        """Everything stored, as bytes: the SQLite files, or every row of every table."""
        if self.backend == "sqlite":
            return b"".join(path.read_bytes() for path in self.data_dir.glob("pushgate.db*"))
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            tables = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1", self.schema
            )
            # Names from pg_tables and our own schema name, not from input: quoting suffices.
            rows = [
                await connection.fetch(
                    f'SELECT t::text FROM "{self.schema}"."{t["tablename"]}" t'  # noqa: S608
                )
                for t in tables
            ]
        finally:
            await connection.close()
        return "\n".join(row[0] for table in rows for row in table).encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend a test runs on."""
    name: str = request.param
    return name


def _on_postgres(statement: str) -> None:
    """Run one statement on the test server from sync code, whatever loop the test runs.

    In a thread of its own: the `database` fixture is sync so that sync tests (Playwright's
    sync API runs a loop of its own) can use it as well as async ones.
    """

    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    if _postgres_unreachable:
        unreachable(_postgres_unreachable[0])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(asyncio.run, run()).result()
        except (OSError, asyncpg.PostgresError, TimeoutError) as error:
            _postgres_unreachable.append(f"PostgreSQL at {POSTGRES_URL} unreachable: {error!r}")
            unreachable(_postgres_unreachable[0])


def unreachable(reason: str) -> None:
    """Skip locally; fail under CI, where PostgreSQL is part of the contract."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(reason + " (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason + " (set PUSHGATE_TEST_POSTGRES_URL, or run scripts/test)")


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[Database]:
    """A fresh, empty database for this test only."""
    if backend == "sqlite":
        yield Database("sqlite", tmp_path / "data")
        return
    schema = f"test_{secrets.token_hex(6)}"
    _on_postgres(f"CREATE SCHEMA {schema}")
    yield Database("postgresql", tmp_path / "data", POSTGRES_URL, schema)
    _on_postgres(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def settings_factory(database: Database) -> Callable[..., Settings]:
    """Settings for this test's database; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **database.settings(),
            "admin_token": ADMIN_TOKEN,
            "outbound_allow": "127.0.0.0/8",
            "retry_schedule": "5,30,120",
            "retry_jitter": 0,
            "request_timeout": 2,
            "secret_key": SECRET_KEY,
            # Tests about error logs and retries fail many attempts in a row; the tests of the
            # circuit breaker set the threshold they need.
            "breaker_threshold": 1000,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@dataclass
class Recorded:
    """One request a receiver saw."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server that records requests and answers from a script (default 200)."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    script: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    default: tuple[int, str, dict[str, str]] = (200, "ok", {})
    # When set, decides every answer from the recorded request (overrides script and default).
    responder: Callable[[Recorded], tuple[int, str, dict[str, str]]] | None = None
    # When set, every request is recorded at once but answered only after the gate opens.
    gate: asyncio.Event | None = None
    # Seconds every answer takes (a vendor across the internet).
    delay: float = 0.0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, within: float = 30) -> None:
        """Return once `count` requests have arrived (answered or still held at the gate)."""
        async with asyncio.timeout(within):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()

    def answer(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        """Queue one answer; when the queue is empty the default answer is used."""
        self.script.append((status, body, headers or {}))

    async def handle(self, request: web.Request) -> web.Response:
        recorded = Recorded(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            await request.read(),
        )
        self.requests.append(recorded)
        self._arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.responder is not None:
            status, body, headers = self.responder(recorded)
        else:
            status, body, headers = self.script.pop(0) if self.script else self.default
        return web.Response(status=status, text=body, headers=headers)


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[[], Awaitable[Receiver]]]:
    """Starts as many receivers as a test asks for, each on its own port."""
    running: list[tuple[Receiver, web.AppRunner]] = []

    async def start() -> Receiver:
        recv = Receiver()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", recv.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        recv.url = f"http://127.0.0.1:{port}"
        running.append((recv, runner))
        return recv

    yield start
    for recv, runner in running:
        if recv.gate is not None:
            recv.gate.set()  # let held requests finish before the server goes
        await runner.cleanup()


@pytest.fixture
async def receiver(receivers: Callable[[], Awaitable[Receiver]]) -> Receiver:
    return await receivers()


@dataclass
class Server:
    """A pushgate server running on loopback, with its runtime and a manual clock."""

    url: str
    runtime: Runtime
    clock: ManualClock
    session: aiohttp.ClientSession
    token: str = ADMIN_TOKEN

    def worker(self, **kwargs: Any) -> Worker:
        """A worker over the same database, for `run_until_idle` (the server runs none)."""
        return self.runtime.new_worker(**kwargs)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": token if token is not None else self.token}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.url + path, data=data, headers=headers
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def deliver(self) -> int:
        """Run a worker until nothing is due now; returns attempts made."""
        return await self.worker().run_until_idle()


async def start_server(
    settings: Settings, clock: ManualClock
) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    app = contract.Recorder(create_app(settings, with_worker=False, clock=clock))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task, f"http://127.0.0.1:{port}"


def runtime_of(uv: uvicorn.Server) -> Runtime:
    """The runtime of a server `start_server` started."""
    recorder = uv.config.app
    assert isinstance(recorder, contract.Recorder)
    runtime: Runtime = recorder.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def assert_described(uv: uvicorn.Server) -> None:
    """Every answer the server gave is as its OpenAPI document describes (`contract.py`)."""
    recorder = uv.config.app
    assert isinstance(recorder, contract.Recorder)
    found = contract.problems(recorder.exchanges, recorder.app.openapi())  # type: ignore[attr-defined]
    assert not found, "\n".join(found)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    clock = ManualClock()
    uv, task, url = await start_server(settings, clock)
    async with aiohttp.ClientSession() as session:
        yield Server(url, runtime_of(uv), clock, session)
    uv.should_exit = True
    await task
    assert_described(uv)


def flag_event(
    event_id: str, *, env: str = "production", action: str = "updateOn", **extra: Any
) -> dict[str, Any]:
    """A LaunchDarkly-style audit-log entry for a flag change."""
    entry: dict[str, Any] = {
        "_id": event_id,
        "date": 1_700_000_000_000,
        "kind": "flag",
        "name": "New checkout",
        "accesses": [{"action": action, "resource": f"proj/web:env/{env}:flag/new-checkout"}],
        "titleVerb": "turned on the flag",
        "member": {"email": "ana@example.com", "firstName": "Ana", "lastName": "Lopez"},
        "comment": "Rolling out",
    }
    entry.update(extra)
    return entry
