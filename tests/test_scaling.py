"""Real processes on one database: an API node and workers, crashes, SIGTERM, slow receivers.

Every process is `python -m pushgate …` with its log in a file; the receiver is a real HTTP
server in the test process. Waiting is on real progress (log lines, counters, requests), in
bounded loops.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest

from conftest import ADMIN_TOKEN, SECRET_KEY, Database, Receiver, flag_event, free_port
from pushgate.clock import system_clock
from pushgate.configurations import create
from pushgate.domain import DeliveryState
from pushgate.ingest import ingest
from pushgate.runtime import running
from pushgate.settings import Settings
from pushgate.store import Store

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parent.parent / "src"
EVENTS = 5000
INGEST_BATCH = 500
# Short leases so a killed worker's deliveries come back within the test; renewals (every
# lease/3) keep the live workers' leases.
LEASE_SECONDS = "5"


@dataclass
class Pushgate:
    """A running `pushgate` process and its log file."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    def events(self) -> list[dict[str, Any]]:
        """The structured log lines so far (every line is one, uvicorn's included)."""
        found = []
        for line in self.log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                found.append(entry)
        return found

    async def logged(self, event: str, within: float = 60) -> dict[str, Any]:
        """The first log entry named `event`, waiting for it if need be."""
        async with asyncio.timeout(within):
            while True:
                for entry in self.events():
                    if entry.get("event") == event:
                        return entry
                if self.process.returncode is not None:
                    tail = self.log.read_text()[-3000:]
                    raise AssertionError(f"{self.name} exited {self.process.returncode}:\n{tail}")
                await asyncio.sleep(0.05)

    async def terminate(self, within: float = 60) -> int:
        """SIGTERM, then the exit code."""
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(within):
            return await self.process.wait()


Launch = Callable[..., Awaitable[Pushgate]]


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    """Wait until `check()` holds: state in other processes cannot signal this one."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.1)


def _log_file(path: Path) -> IO[bytes]:
    return path.open("wb")


@pytest.fixture
async def launch(database: Database, tmp_path: Path) -> AsyncIterator[Launch]:
    """Starts `pushgate <args>` on this test's database; settings as keyword arguments."""
    started: list[Pushgate] = []

    async def launch_(name: str, *args: str, **settings: str | None) -> Pushgate:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            **database.env(),
            "PUSHGATE_SECRET_KEY": SECRET_KEY,
            "PUSHGATE_ADMIN_TOKEN": ADMIN_TOKEN,
            "PUSHGATE_OUTBOUND_ALLOW": "127.0.0.0/8",
            "PUSHGATE_LOG_LEVEL": "info",
            **{f"PUSHGATE_{key.upper()}": value or "" for key, value in settings.items()},
        }
        for key, value in settings.items():  # None: the variable is not set at all
            if value is None:
                del env[f"PUSHGATE_{key.upper()}"]
        log = tmp_path / f"{name}.log"
        with _log_file(log) as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pushgate", *args, env=env, stdout=out, stderr=out
            )
        started.append(Pushgate(name, process, log))
        return started[-1]

    yield launch_
    for pushgate in started:
        if pushgate.process.returncode is None:
            pushgate.process.kill()
            await pushgate.process.wait()


@dataclass
class Api:
    """An API node, spoken to over HTTP."""

    url: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method, self.url + path, json=body, headers={"Authorization": ADMIN_TOKEN}
        ) as response:
            assert response.status < 300, await response.text()
            return await response.json() if response.status != 204 else None

    async def status(self, configuration_id: str) -> dict[str, Any]:
        answer = await self.call("GET", f"/api/v2/integrations/webhook/{configuration_id}")
        status: dict[str, Any] = answer["_status"]
        return status


async def ready(node: Pushgate, url: str, session: aiohttp.ClientSession) -> None:
    """Return once the process at `url` answers /readyz with 200 (fail if it exits)."""
    async with asyncio.timeout(60):
        while True:
            try:
                async with session.get(url + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            assert node.process.returncode is None, node.log.read_text()
            await asyncio.sleep(0.1)


@pytest.fixture
async def api(launch: Launch) -> AsyncIterator[Api]:
    """`pushgate serve --no-worker` on a free port, ready."""
    port = free_port()
    node = await launch("api", "serve", "--no-worker", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        await ready(node, url, session)
        yield Api(url, session)
    assert await node.terminate() == 0


async def deliver_5000_events(
    api: Api, receiver: Receiver, workers: list[Pushgate], *, during: Callable[[], Awaitable[None]]
) -> str:
    """Create a webhook to `receiver`, post EVENTS events, run `during`, wait for all counted."""
    created = await api.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "receiver", "on": True, "config": {"url": receiver.url + "/hook"}},
    )
    for worker in workers:
        await worker.logged("worker.started")
    for start in range(0, EVENTS, INGEST_BATCH):
        items = [flag_event(f"e{i:05d}") for i in range(start, start + INGEST_BATCH)]
        answer = await api.call("POST", "/api/v2/events", {"items": items})
        assert answer["deliveries"] == INGEST_BATCH
    await during()
    configuration_id: str = created["_id"]

    async def all_counted() -> bool:
        return (await api.status(configuration_id))["successCount"] >= EVENTS

    await eventually(all_counted, within=180)
    return configuration_id


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_three_worker_processes_deliver_every_event_exactly_once(
    api: Api, receiver: Receiver, launch: Launch
) -> None:
    workers = [
        await launch(f"worker{i}", "worker", lease_seconds=LEASE_SECONDS, log_level="debug")
        for i in range(3)
    ]

    async def nothing() -> None:
        return None

    configuration_id = await deliver_5000_events(api, receiver, workers, during=nothing)

    received = collections.Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(received) == EVENTS
    assert received.most_common(1)[0][1] == 1  # none twice
    status = await api.status(configuration_id)
    assert (status["successCount"], status["errorCount"]) == (EVENTS, 0)
    shares = [sum(e.get("event") == "delivery.succeeded" for e in w.events()) for w in workers]
    assert sum(shares) == EVENTS
    assert min(shares) > 0, shares  # all three took part
    for worker in workers:
        assert await worker.terminate() == 0


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_worker_killed_mid_run_loses_nothing_and_duplicates_only_what_it_held(
    api: Api,
    receiver: Receiver,
    launch: Launch,
    settings_factory: Callable[..., Settings],
) -> None:
    """kill -9 one of three workers while it delivers.

    At-least-once, precisely: every event arrives; an event arrives twice only if the killed
    worker held its delivery (claimed, not recorded) when it died — it may have sent it before
    dying, and after its lease expires another worker sends it again. The counters count
    deliveries, not requests: `successCount` equals the number of distinct events the receiver
    saw (each delivery is recorded as succeeded once), and the requests the receiver saw equal
    `successCount` plus those duplicates.
    """
    workers = [await launch(f"worker{i}", "worker", lease_seconds=LEASE_SECONDS) for i in range(3)]
    victim = workers[0]
    held_at_death: list[str] = []
    observer = await Store.open(settings_factory())

    async def kill_the_first_worker_mid_run() -> None:
        owner = (await victim.logged("worker.started"))["owner"]
        await receiver.wait_for(EVENTS // 4, within=120)
        victim.process.kill()
        await victim.process.wait()
        held_at_death.extend(lease.event_id for lease in await observer.deliveries.held_by(owner))

    try:
        configuration_id = await deliver_5000_events(
            api, receiver, workers, during=kill_the_first_worker_mid_run
        )
        assert await observer.deliveries.held_by("nobody") == []
        counts = await observer.deliveries.counts()
    finally:
        await observer.close()

    assert victim.process.returncode == -signal.SIGKILL
    assert held_at_death, "the worker held nothing when it died: the test proved nothing"
    received = collections.Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(received) == EVENTS  # every event arrived
    duplicates = {event_id for event_id, times in received.items() if times > 1}
    assert duplicates <= set(held_at_death)  # only what the dead worker held
    assert max(received.values()) <= 2
    status = await api.status(configuration_id)
    assert status["successCount"] == len(received) == EVENTS
    assert status["errorCount"] == 0
    assert len(receiver.requests) == status["successCount"] + len(duplicates)
    assert counts[DeliveryState.SUCCEEDED] == EVENTS
    for worker in workers[1:]:
        assert await worker.terminate() == 0


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_slow_request_keeps_its_lease_while_another_worker_looks_for_work(
    receiver: Receiver, launch: Launch, settings_factory: Callable[..., Settings]
) -> None:
    receiver.gate = asyncio.Event()
    settings = settings_factory()
    store = await Store.open(settings)
    try:
        await _enqueue(settings, receiver, events=1)
        workers = [
            await launch(f"worker{i}", "worker", lease_seconds="1", poll_interval="0.1")
            for i in range(2)
        ]
        owners = [(await w.logged("worker.started"))["owner"] for w in workers]
        await receiver.wait_for(1)
        [first] = [lease for owner in owners for lease in await store.deliveries.held_by(owner)]

        async def renewed_past_three_leases() -> bool:
            leases = [le for owner in owners for le in await store.deliveries.held_by(owner)]
            return bool(leases) and leases[0].expires_at > first.expires_at + 2000

        async def delivered() -> bool:
            return (await store.deliveries.counts())[DeliveryState.SUCCEEDED] == 1

        await eventually(renewed_past_three_leases, within=30)
        receiver.gate.set()
        await eventually(delivered, within=30)
    finally:
        await store.close()
    assert len(receiver.requests) == 1
    for worker in workers:
        assert await worker.terminate() == 0


@pytest.mark.parametrize("command", [["worker"], ["serve", "--port", "0"]])
async def test_sigterm_finishes_in_flight_deliveries_releases_the_rest_and_exits_0(
    receiver: Receiver,
    launch: Launch,
    settings_factory: Callable[..., Settings],
    command: list[str],
) -> None:
    receiver.gate = asyncio.Event()
    settings = settings_factory()
    store = await Store.open(settings)
    try:
        process = await launch(
            command[0], *command, worker_concurrency="2", claim_batch_size="2", poll_interval="0.1"
        )
        owner = (await process.logged("worker.started"))["owner"]
        await _enqueue(settings, receiver, events=6)
        await receiver.wait_for(2)  # two in flight, two more claimed and waiting

        process.process.send_signal(signal.SIGTERM)
        stopping = await process.logged("worker.stopping")
        receiver.gate.set()
        async with asyncio.timeout(60):
            assert await process.process.wait() == 0

        assert stopping["in_flight"] == 2
        counts = await store.deliveries.counts()
        assert (counts[DeliveryState.SUCCEEDED], counts[DeliveryState.PENDING]) == (2, 4)
        assert await store.deliveries.held_by(owner) == []
    finally:
        await store.close()
    assert len(receiver.requests) == 2


async def _enqueue(settings: Settings, receiver: Receiver, *, events: int) -> None:
    """A webhook configuration to `receiver` and `events` events for it, written directly."""
    async with running(settings, with_worker=False) as rt:
        body = {"name": "receiver", "on": True, "config": {"url": receiver.url}}
        await create(rt.services, "webhook", body, now=system_clock())
        batch = {"items": [flag_event(f"e{i}") for i in range(events)]}
        await ingest(rt.store, batch, now=system_clock())


# With default settings (leases of 10 s renewed every 3.3 s), what a dead process held goes
# out again within this long after it died.
RECOVERY_SECONDS = 15


async def serve_ready(launch: Launch, name: str) -> tuple[Pushgate, Api, aiohttp.ClientSession]:
    """`pushgate serve` (with its worker) on a free port, answering."""
    port = free_port()
    node = await launch(name, "serve", "--port", str(port))
    session = aiohttp.ClientSession()
    url = f"http://127.0.0.1:{port}"
    await ready(node, url, session)
    return node, Api(url, session), session


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_after_kill_9_the_restarted_process_delivers_what_the_dead_one_held(
    receiver: Receiver, launch: Launch
) -> None:
    receiver.gate = asyncio.Event()  # the first process's requests are never answered
    first, api, session = await serve_ready(launch, "first")
    try:
        created = await api.call(
            "POST",
            "/api/v2/integrations/webhook",
            {"name": "receiver", "on": True, "config": {"url": receiver.url}},
        )
        await api.call("POST", "/api/v2/events", {"items": [flag_event(f"e{i}") for i in range(3)]})
        await receiver.wait_for(3)  # all three held by the first process, in flight
    finally:
        await session.close()
    first.process.kill()
    await first.process.wait()
    killed_at = asyncio.get_running_loop().time()
    receiver.gate.set()

    second, api, session = await serve_ready(launch, "second")
    try:

        async def delivered() -> bool:
            return (await api.status(created["_id"]))["successCount"] == 3

        await eventually(delivered, within=RECOVERY_SECONDS)
    finally:
        await session.close()
    took = asyncio.get_running_loop().time() - killed_at
    assert took < RECOVERY_SECONDS
    assert sorted({r.json()["_id"] for r in receiver.requests}) == ["e0", "e1", "e2"]
    assert await second.terminate() == 0


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_after_kill_9_a_surviving_worker_delivers_what_the_dead_one_held(
    api: Api, receiver: Receiver, launch: Launch
) -> None:
    receiver.gate = asyncio.Event()
    victim = await launch("victim", "worker")
    await victim.logged("listener.listening")
    created = await api.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": "receiver", "on": True, "config": {"url": receiver.url}},
    )
    await api.call("POST", "/api/v2/events", {"items": [flag_event(f"e{i}") for i in range(3)]})
    await receiver.wait_for(3)  # the only worker holds all three
    survivor = await launch("survivor", "worker", log_level="debug")
    await survivor.logged("listener.listening")

    victim.process.kill()
    await victim.process.wait()
    killed_at = asyncio.get_running_loop().time()
    receiver.gate.set()

    async def delivered() -> bool:
        return (await api.status(created["_id"]))["successCount"] == 3

    await eventually(delivered, within=RECOVERY_SECONDS)
    assert asyncio.get_running_loop().time() - killed_at < RECOVERY_SECONDS
    handled = sum(e.get("event") == "delivery.succeeded" for e in survivor.events())
    assert handled == 3, "the survivor should have delivered them"
    assert await survivor.terminate() == 0


ANSWERED_BEFORE_THE_KILL = 300


async def test_kill_9_during_a_stream_of_posts_loses_no_event_that_was_answered_202(
    launch: Launch, settings_factory: Callable[..., Settings]
) -> None:
    port = free_port()
    node = await launch("api", "serve", "--no-worker", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    answered: list[str] = []
    enough = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        await ready(node, url, session)

        async def post_until_refused(client: int) -> None:
            for number in range(100_000):
                event_id = f"c{client}-{number}"
                try:
                    async with session.post(
                        url + "/api/v2/events",
                        json=flag_event(event_id),
                        headers={"Authorization": ADMIN_TOKEN},
                    ) as response:
                        if response.status == 202:
                            answered.append(event_id)
                            if len(answered) >= ANSWERED_BEFORE_THE_KILL:
                                enough.set()
                except aiohttp.ClientError:
                    return  # the server is gone

        posting = [asyncio.create_task(post_until_refused(client)) for client in range(16)]
        await asyncio.wait_for(enough.wait(), 60)  # and more in flight, sharing commits
        node.process.kill()
        await node.process.wait()
        await asyncio.gather(*posting)

    store = await Store.open(settings_factory())
    try:
        found = await store.deliveries.stored(answered)
    finally:
        await store.close()
    assert len(answered) >= ANSWERED_BEFORE_THE_KILL
    assert set(answered) <= found
