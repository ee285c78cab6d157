"""A database that goes away: 503 with Retry-After, nothing accepted that was not committed,
one log line when it goes and one when it is back.

PostgreSQL is reached through a TCP proxy in this process that the test cuts and restores,
which is what a restarting or unreachable server looks like to pushgate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import structlog

from conftest import (
    ADMIN_TOKEN,
    POSTGRES_URL,
    Receiver,
    assert_described,
    flag_event,
    free_port,
    start_server,
)
from pushgate.clock import ManualClock
from pushgate.configurations import create
from pushgate.ingest import ingest
from pushgate.runtime import running
from pushgate.settings import Settings
from pushgate.store import Store
from webpage import WebClient

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


class Proxy:
    """Forwards 127.0.0.1:`port` to PostgreSQL until cut; `restore` listens again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._pipes.discard(writer)
            writer.transport.abort()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    target = urlsplit(POSTGRES_URL)
    running = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    await running.start()
    yield running
    await running.cut()


@pytest.fixture
def through_proxy(proxy: Proxy, settings_factory: Callable[..., Settings]) -> Settings:
    target = urlsplit(POSTGRES_URL)
    url = POSTGRES_URL.replace(target.netloc, f"{target.username}@127.0.0.1:{proxy.port}")
    return settings_factory(database_url=url)


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": ADMIN_TOKEN}
    async with session.request(method, url, json=body, headers=headers) as resp:
        text = await resp.text()
        return resp.status, dict(resp.headers), (await resp.json() if text else None)


async def test_a_database_outage_answers_503_logs_once_and_accepts_nothing(
    proxy: Proxy,
    through_proxy: Settings,
    settings: Settings,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    uv, task, base = await start_server(through_proxy, ManualClock())
    browser = WebClient(base)
    try:
        assert (await browser.sign_in(ADMIN_TOKEN)).status == 303
        async with aiohttp.ClientSession() as session:
            body = {"name": "hook", "on": True, "config": {"url": receiver.url}}
            status, _, created = await call(
                session, "POST", f"{base}/api/v2/integrations/webhook", body
            )
            assert status == 201

            await proxy.cut()
            with structlog.testing.capture_logs() as logged, caplog.at_level(logging.INFO):
                answers = [
                    await call(session, "POST", f"{base}/api/v2/events", flag_event(f"down{i}"))
                    for i in range(10)
                ]
                # ... and requests that share a commit (group commit) fail together
                answers += await asyncio.gather(
                    *(
                        call(session, "POST", f"{base}/api/v2/events", flag_event(f"many{i}"))
                        for i in range(10)
                    )
                )
                listed = await call(session, "GET", f"{base}/api/v2/integrations/webhook")
                page = await browser.get("/settings/integrations")
                await proxy.start()
                back = await call(session, "POST", f"{base}/api/v2/events", flag_event("up"))
                await call(session, "POST", f"{base}/api/v2/events", flag_event("up2"))
    finally:
        await browser.close()
        uv.should_exit = True
        with contextlib.suppress(Exception):
            await task
    assert_described(uv)

    for status, headers, answer in [*answers, listed]:
        assert status == 503
        assert answer["code"] == "service_unavailable"
        assert headers["Retry-After"] == "5"
    assert page.status == 503
    assert "cannot reach its database" in page.text
    assert back[0] == 202
    events = [entry["event"] for entry in logged]
    assert events.count("database.unavailable") == 1
    assert events.count("database.available") == 1
    assert "api.unexpected_error" not in events
    assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]

    store = await Store.open(settings)  # straight to the database, not through the proxy
    try:
        counts = await store.deliveries.counts()
        [row] = await store.configurations.all()
    finally:
        await store.close()
    assert sum(counts.values()) == 2  # "up" and "up2"; none of the twenty refused ones
    assert row.id == created["_id"]


async def test_a_worker_keeps_its_outcomes_through_an_outage_and_records_them_after(
    proxy: Proxy,
    through_proxy: Settings,
    settings_factory: Callable[..., Settings],
    receiver: Receiver,
) -> None:
    receiver.gate = asyncio.Event()
    worker_settings = settings_factory(
        database_url=through_proxy.database_url, poll_interval=0.1, lease_seconds=60
    )
    async with running(worker_settings, with_worker=False) as rt:
        body = {"name": "hook", "on": True, "config": {"url": receiver.url}}
        row = await create(rt.services, "webhook", body, now=rt.clock())
        await ingest(rt.store, {"items": [flag_event(f"e{i}") for i in range(5)]}, now=rt.clock())
        stop = asyncio.Event()
        with structlog.testing.capture_logs() as logged:
            task = asyncio.create_task(rt.new_worker().run(stop))
            await receiver.wait_for(5)  # all five in flight, answers held
            await proxy.cut()
            receiver.gate.set()  # the answers come while the database is away
            await asyncio.sleep(0.5)  # a few polls fail meanwhile
            await proxy.start()
            async with asyncio.timeout(30):
                while True:  # the worker is in this loop, but signals nothing: look
                    found = await rt.store.configurations.get("webhook", row.id)
                    if found.status.success_count == 5:
                        break
                    await asyncio.sleep(0.05)
            stop.set()
            await task
    assert len(receiver.requests) == 5  # each sent once
    events = [entry["event"] for entry in logged]
    assert events.count("database.unavailable") == 1
    assert events.count("database.available") == 1
    assert "worker.error" not in events
