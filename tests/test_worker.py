"""The running worker: lease renewal, wake-ups across processes, graceful stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from conftest import POSTGRES_URL, Database, Receiver, Server, flag_event
from pushgate.configurations import create
from pushgate.delivery.worker import Worker, default_owner
from pushgate.domain import DeliveryState
from pushgate.runtime import running
from pushgate.settings import Settings
from pushgate.store import NewEvent, Store


@dataclass
class Running:
    """A worker inside `Worker.run`, in this event loop."""

    worker: Worker
    stopping: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Ask it to stop and wait until its graceful shutdown is over."""
        self.stopping.set()
        await self.task


@pytest.fixture
async def start() -> AsyncIterator[Callable[[Worker], Running]]:
    """Starts `worker.run`; whatever is still running at the end is stopped."""
    started: list[Running] = []

    def start_(worker: Worker) -> Running:
        stopping = asyncio.Event()
        started.append(Running(worker, stopping, asyncio.create_task(worker.run(stopping))))
        return started[-1]

    yield start_
    for run in started:
        await run.stop()


def worker_with(server: Server, settings: Settings) -> Worker:
    """A worker over the server's runtime with settings of its own."""
    return server.runtime.new_worker(settings)


async def make_webhook(server: Server, url: str) -> None:
    body = {"name": "hook", "on": True, "config": {"url": url}}
    status, created = await server.call("POST", "/api/v2/integrations/webhook", body)
    assert status == 201, created


async def post_events(server: Server, *ids: str) -> None:
    status, _ = await server.call("POST", "/api/v2/events", {"items": [flag_event(i) for i in ids]})
    assert status == 202


def test_owner_names_differ_between_runs_of_one_process() -> None:
    assert default_owner() != default_owner()


async def test_worker_renews_the_lease_of_a_slow_delivery(
    server: Server, receiver: Receiver, start: Callable[[Worker], Running]
) -> None:
    receiver.gate = asyncio.Event()
    await make_webhook(server, receiver.url)
    await post_events(server, "e1")
    run = start(server.worker())
    await receiver.wait_for(1)

    server.clock.advance(8)  # the lease is 10 s
    await run.worker.renew_leases()
    server.clock.advance(8)  # past the first lease, within the renewed one
    store = server.runtime.store.deliveries
    assert (
        await store.claim_due(owner="rival", now=server.clock(), limit=10, lease_ms=1)
    ).deliveries == []

    receiver.gate.set()
    await run.stop()
    assert (await store.counts())[DeliveryState.SUCCEEDED] == 1
    assert len(receiver.requests) == 1


async def test_stopping_worker_lets_in_flight_attempts_finish_and_releases_the_rest(
    server: Server,
    receiver: Receiver,
    settings_factory: Callable[..., Settings],
    start: Callable[[Worker], Running],
) -> None:
    receiver.gate = asyncio.Event()
    await make_webhook(server, receiver.url)
    await post_events(server, *(f"e{i}" for i in range(6)))
    run = start(worker_with(server, settings_factory(worker_concurrency=2, claim_batch_size=2)))
    await receiver.wait_for(2)  # two in flight, two more claimed and waiting for a slot

    run.stopping.set()
    receiver.gate.set()
    await run.stop()

    store = server.runtime.store.deliveries
    assert len(receiver.requests) == 2
    counts = await store.counts()
    assert (counts[DeliveryState.SUCCEEDED], counts[DeliveryState.PENDING]) == (2, 4)
    assert await store.held_by(run.worker.owner) == []
    released = (
        await store.claim_due(owner="next", now=server.clock(), limit=10, lease_ms=1)
    ).deliveries
    assert [d.attempt for d in released] == [1, 1, 1, 1]  # releasing undid the claims


async def test_stopping_worker_releases_attempts_that_outlast_the_grace_period(
    server: Server,
    receiver: Receiver,
    settings_factory: Callable[..., Settings],
    start: Callable[[Worker], Running],
) -> None:
    receiver.gate = asyncio.Event()  # never opened while the worker runs
    await make_webhook(server, receiver.url)
    await post_events(server, "e1", "e2")
    run = start(worker_with(server, settings_factory(shutdown_grace=0.2)))
    await receiver.wait_for(2)

    await run.stop()

    store = server.runtime.store.deliveries
    assert (await store.counts())[DeliveryState.PENDING] == 2
    assert await store.held_by(run.worker.owner) == []
    assert (
        len(
            (
                await store.claim_due(owner="next", now=server.clock(), limit=10, lease_ms=1)
            ).deliveries
        )
        == 2
    )


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_idle_worker_in_another_process_wakes_on_notify_not_on_its_poll(
    server: Server,
    receiver: Receiver,
    settings_factory: Callable[..., Settings],
    start: Callable[[Worker], Running],
) -> None:
    settings = settings_factory(poll_interval=300)
    async with running(settings, with_worker=False, clock=server.clock) as other_process:
        await make_webhook(server, receiver.url)
        run = start(other_process.new_worker())
        await asyncio.wait_for(run.worker.idle.wait(), 10)

        await post_events(server, "e1")  # only NOTIFY can wake it before 300 s
        await receiver.wait_for(1, within=10)
        await run.stop()
    assert receiver.requests[0].json()["_id"] == "e1"


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_listener_gets_its_connection_back_after_losing_it(
    settings: Settings, database: Database
) -> None:
    store = await Store.open(settings)
    woke = asyncio.Event()
    try:
        async with store.deliveries.listen(woke.set):
            woke.clear()
            admin = await asyncpg.connect(POSTGRES_URL)
            try:
                terminated = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'pushgate-listener' AND query LIKE $1",
                    f"%{database.schema}%",
                )
            finally:
                await admin.close()
            assert terminated == 1
            await asyncio.wait_for(woke.wait(), 10)  # reconnected: it looks once, at once

            woke.clear()
            event = NewEvent("e1", 0, "flag", {"_id": "e1"}, [await _configuration(store)])
            await store.deliveries.enqueue([event], now=0)
            await asyncio.wait_for(woke.wait(), 10)
    finally:
        await store.close()


async def _configuration(store: Store) -> str:
    created = await store.configurations.create(
        integration_key="webhook",
        name="hook",
        on=True,
        tags=[],
        config={"url": "https://example.com"},
        secrets=None,
        statements=[],
        now=0,
    )
    return created.id


async def test_configuration_sealed_with_another_key_fails_its_deliveries_not_the_batch(
    server: Server, receiver: Receiver, settings_factory: Callable[..., Settings]
) -> None:
    status, _ = await server.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "signed", "on": True, "config": {"url": receiver.url, "secret": "s3cret-value"}},
    )
    assert status == 201
    other_key = settings_factory(secret_key="another-key-" + "x" * 30)
    async with running(other_key, with_worker=False, clock=server.clock) as other_process:
        body = {"name": "hook", "on": True, "config": {"url": receiver.url}}
        await create(other_process.services, "webhook", body, now=server.clock())  # its own key
        await post_events(server, "e1")
        await other_process.new_worker().run_until_idle()

    assert len(receiver.requests) == 1  # the readable configuration got its event
    _, listing = await server.call("GET", "/api/v2/integrations/webhook")
    signed = next(item for item in listing["items"] if item["name"] == "signed")
    error = signed["_status"]["errors"][0]
    assert "cannot decrypt" in error["error"]
    assert "PUSHGATE_SECRET_KEY" in error["hint"]
    assert error["willRetry"] is True
