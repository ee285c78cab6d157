"""Building blocks of the drain benchmarks: a backlog in a database, a worker process draining
it, and the reference (a bare aiohttp client sending the very same requests).

    backlog = await prepare(data_dir, sink, configurations, events)   # not timed
    rate, peak_rss = await drain_with_worker(backlog, concurrency)        # timed
    reference = await replay(backlog.requests, concurrency)               # timed

The worker is a real `pushgate worker` process on the prepared SQLite database (what a user
runs); the clock starts when it reports `worker.started` and stops when the status counters
say every delivery succeeded. The reference sends, at the same concurrency, exactly the
requests the adapters render for the same deliveries (rendered beforehand, not timed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from pushgate.configurations import create, open_config
from pushgate.events import build_context, parse_entry
from pushgate.integrations.base import Endpoints, OutboundRequest
from pushgate.runtime import running
from pushgate.settings import Settings
from pushgate.store import NewEvent
from sample import event
from serving import pushgate_env

# Events committed per transaction while a backlog is prepared.
PREPARE_BATCH = 2000
# How often the drain's progress is read from the status counters (seconds).
PROGRESS_INTERVAL = 0.05


@dataclass
class Backlog:
    """A prepared database: its settings, how many deliveries wait, and (when rendered) the
    requests they become."""

    env: dict[str, str]
    settings: Settings
    deliveries: int
    requests: list[OutboundRequest] = field(default_factory=list)


def bench_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of a benchmark database (loopback allowed, no breaker surprises)."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "outbound_allow": "127.0.0.0/8",
        "secret_key": "b" * 40,
        "retention_days": 0,
        **overrides,
    }
    return Settings(**values)


async def prepare(
    data_dir: Path,
    configurations: Sequence[tuple[str, dict[str, Any]]],
    events: int,
    *,
    render: bool = True,
    endpoint_overrides: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> Backlog:
    """A database with `configurations` ((integration key, config) each, all on) and
    `events` events that every one of them matches; the requests rendered when `render`."""
    overrides = endpoint_overrides or {}
    settings = bench_settings(data_dir, endpoint_overrides=overrides)
    requests: list[OutboundRequest] = []
    async with running(settings, with_worker=False) as rt:
        rows = [
            await create(
                rt.services,
                key,
                {"name": f"{key} {i}", "on": True, "config": config},
                now=rt.clock(),
            )
            for i, (key, config) in enumerate(configurations)
        ]
        ids = [row.id for row in rows]
        endpoints = Endpoints(overrides)
        opened = [
            (rt.catalog.get(row.integration_key), open_config(rt.services, row)) for row in rows
        ]
        for start in range(0, events, PREPARE_BATCH):
            entries = [
                parse_entry(event(i), now_ms=0)
                for i in range(start, min(events, start + PREPARE_BATCH))
            ]
            batch = [NewEvent(e["_id"], e["date"], e["kind"], e, ids) for e in entries]
            await rt.store.deliveries.enqueue(batch, now=rt.clock())
            if render:
                for entry in entries:
                    context = build_context(entry)
                    requests += (
                        integration.build_request(context, config, endpoints)
                        for integration, config in opened
                    )
    environment = pushgate_env(
        data_dir,
        secret_key="b" * 40,
        retention_days="0",
        endpoint_overrides=json.dumps(overrides),
        **(env or {}),
    )
    return Backlog(environment, settings, events * len(configurations), requests)


async def drain_with_worker(
    backlog: Backlog,
    *,
    concurrency: int,
    configuration_concurrency: int | None = None,
    until: int | None = None,
) -> tuple[float, int]:
    """Deliveries per second of one `pushgate worker` draining the backlog (or its next
    `until` deliveries: a backlog may be drained in several rounds), and the worker's peak
    resident memory in bytes."""
    database = Path(backlog.settings.data_dir) / "pushgate.db"
    done_before = _succeeded(database)
    target = until or backlog.deliveries - done_before
    env = {
        **backlog.env,
        "PUSHGATE_WORKER_CONCURRENCY": str(concurrency),
        "PUSHGATE_CONFIGURATION_CONCURRENCY": str(configuration_concurrency or concurrency),
        "PUSHGATE_LOG_LEVEL": "info",
    }
    log = Path(backlog.settings.data_dir) / "worker.log"
    with log.open("wb") as out:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pushgate", "worker", env=env, stdout=out, stderr=out
        )
    try:
        async with asyncio.timeout(120):
            while "worker.started" not in log.read_text():
                if worker.returncode is not None:
                    raise RuntimeError(log.read_text()[-2000:])
                await asyncio.sleep(0.02)
        started = time.perf_counter()
        while _succeeded(database) - done_before < target:
            if worker.returncode is not None:
                raise RuntimeError(log.read_text()[-2000:])
            await asyncio.sleep(PROGRESS_INTERVAL)
        elapsed = time.perf_counter() - started
        peak = _peak_rss(worker.pid)
    finally:
        worker.terminate()
        await worker.wait()
    return target / elapsed, peak


def _succeeded(database: Path) -> int:
    """Deliveries recorded as succeeded, from the status counters alone: a look that costs
    the worker nothing (the configuration listing would count every pending delivery, and a
    connection kept open would hold back the worker's WAL checkpoints)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        (done,) = conn.execute(
            "SELECT COALESCE(SUM(success_count), 0) FROM configuration_status"
        ).fetchone()
    return int(done)


def _peak_rss(pid: int) -> int:
    """A process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def replay(requests: Sequence[OutboundRequest], *, concurrency: int) -> float:
    """Requests per second of a bare aiohttp client sending `requests` at `concurrency`."""
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send_all() -> None:
            for request in queue:
                async with session.request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=dict(request.headers),
                    params=list(request.params) or None,
                ) as answer:
                    await answer.read()
                    if answer.status >= 300:
                        raise RuntimeError(f"{request.url} answered {answer.status}")

        started = time.perf_counter()
        await asyncio.gather(*(send_all() for _ in range(concurrency)))
        return len(requests) / (time.perf_counter() - started)


def cpu_count() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0))
