"""Drain throughput on PostgreSQL with 1, 2, 4 … `pushgate worker` processes against one sink.

    python bench/scale.py [--deliveries N] [--workers 1,2,4] [--repeat R] [--sink-latency MS]
                          [--concurrency C] [--database-url URL]

For each worker count: a fresh schema, one webhook configuration to the sink, that many real
`pushgate worker` processes started and idle (listening), then N deliveries committed in one
transaction. The clock runs from that commit (the NOTIFY wakes the workers) until the database
says all N succeeded. Rounds run the worker counts in turn (1, 2, 4, 1, 2, 4, …) so that a busy
moment on the machine does not land on one count only; prints the median deliveries per second
of each count, the range, and the ratio to the first count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from asyncio.subprocess import PIPE, Process
from pathlib import Path

import aiohttp
import asyncpg

from pushgate.clock import system_clock
from pushgate.configurations import create
from pushgate.domain import DeliveryState
from pushgate.events import parse_entry
from pushgate.logs import configure
from pushgate.runtime import running
from pushgate.settings import Settings
from pushgate.store import NewEvent
from sample import event
from sinks import free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "b" * 40
DEFAULT_URL = os.environ.get(
    "PUSHGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


async def start_workers(count: int, env: dict[str, str], logs: Path) -> list[Process]:
    """`count` worker processes, returned once each listens for notifications (idle)."""
    workers = []
    for i in range(count):
        with (logs / f"worker{i}.log").open("wb") as out:
            workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "pushgate", "worker", env=env, stdout=out, stderr=out
                )
            )
    async with asyncio.timeout(60):
        for i in range(count):
            while True:
                if "listener.listening" in (logs / f"worker{i}.log").read_text():
                    break
                await asyncio.sleep(0.05)
    return workers


async def drain(url: str, sink: str, workers: int, n: int, concurrency: int, logs: Path) -> float:
    """Seconds `workers` worker processes take to deliver n deliveries."""
    schema = f"bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    settings = Settings(
        database_url=url,
        database_schema=schema,
        secret_key=SECRET_KEY,
        outbound_allow="127.0.0.0/8",
        data_dir=logs,
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "PUSHGATE_DATABASE_URL": url,
        "PUSHGATE_DATABASE_SCHEMA": schema,
        "PUSHGATE_SECRET_KEY": SECRET_KEY,
        "PUSHGATE_OUTBOUND_ALLOW": "127.0.0.0/8",
        "PUSHGATE_WORKER_CONCURRENCY": str(concurrency),
        "PUSHGATE_DATA_DIR": str(logs),
        "PUSHGATE_LOG_LEVEL": "info",
    }
    processes: list[Process] = []
    try:
        async with running(settings, with_worker=False) as rt:
            body = {"name": "bench", "on": True, "config": {"url": sink}}
            configuration = await create(rt.services, "webhook", body, now=system_clock())
            batch = [
                NewEvent(e["_id"], e["date"], e["kind"], e, [configuration.id])
                for e in (parse_entry(event(i), now_ms=0) for i in range(n))
            ]
            processes = await start_workers(workers, env, logs)
            await rt.store.deliveries.enqueue(batch, now=system_clock())
            started = time.perf_counter()
            while True:  # other processes cannot signal us; the database is the truth
                if (await rt.store.deliveries.counts())[DeliveryState.SUCCEEDED] == n:
                    return time.perf_counter() - started
                await asyncio.sleep(0.02)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await process.wait()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated process counts")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over the worker counts")
    parser.add_argument("--concurrency", type=int, default=64, help="attempts per worker")
    parser.add_argument("--sink-latency", type=float, default=0, help="ms before each answer")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    configure("warning")
    counts = [int(w) for w in args.workers.split(",")]

    port = free_port()
    sink = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("sink.py")),
        str(port),
        str(args.sink_latency),
        stdout=PIPE,
    )
    rates: dict[int, list[float]] = {workers: [] for workers in counts}
    try:
        assert sink.stdout is not None
        assert (await sink.stdout.readline()).strip() == b"ready"
        url = f"http://127.0.0.1:{port}/hook"
        for _ in range(args.repeat):
            for workers in counts:
                with tempfile.TemporaryDirectory() as tmp:
                    seconds = await drain(
                        args.database_url,
                        url,
                        workers,
                        args.deliveries,
                        args.concurrency,
                        Path(tmp),
                    )
                rates[workers].append(args.deliveries / seconds)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/count") as answer,
        ):
            received = (await answer.json())["received"]
    finally:
        sink.terminate()
        await sink.wait()

    print(
        f"deliveries={args.deliveries} concurrency={args.concurrency}/worker "
        f"sink_latency={args.sink_latency:g}ms rounds={args.repeat} cpus={os.cpu_count()}"
    )
    print(f"sink received {received} (expected {args.deliveries * len(counts) * args.repeat})")
    medians = {workers: statistics.median(found) for workers, found in rates.items()}
    base = medians[counts[0]]
    for workers, rate in medians.items():
        low, high = min(rates[workers]), max(rates[workers])
        print(
            f"{workers} worker process{'es' if workers > 1 else '  '}: {rate:6.0f} deliveries/s"
            f"  (range {low:.0f}-{high:.0f})  x{rate / base:4.2f}"
        )
    print(json.dumps({str(w): [round(r) for r in found] for w, found in rates.items()}))


if __name__ == "__main__":
    asyncio.run(main())
