"""Drain throughput: pushgate's worker versus a plain aiohttp client, same bodies, same sink.

    python bench/drain.py [--deliveries N] [--concurrency C]

Starts a sink in its own process, measures a bare aiohttp client posting N webhook bodies at
concurrency C (the reference), then enqueues N deliveries in a fresh SQLite pushgate and times
one worker draining them. Prints both rates and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from pushgate.clock import system_clock
from pushgate.configurations import create
from pushgate.events import parse_entry
from pushgate.ingest import ingest
from pushgate.logs import configure
from pushgate.runtime import running
from pushgate.settings import Settings
from sinks import sink

BATCH = 1000


def event(i: int) -> dict[str, object]:
    return {
        "_id": f"bench-{i:08d}",
        "date": 1_700_000_000_000 + i,
        "kind": "flag",
        "name": "New checkout",
        "accesses": [
            {"action": "updateOn", "resource": "proj/web:env/production:flag/new-checkout"}
        ],
        "titleVerb": "turned on the flag",
        "member": {"email": "ana@example.com", "firstName": "Ana", "lastName": "Lopez"},
        "comment": "Rolling out to everyone",
    }


async def reference(url: str, n: int, concurrency: int) -> float:
    """Deliveries per second of a bare aiohttp client posting the same bodies."""
    bodies = [json.dumps(parse_entry(event(i), now_ms=0)).encode() for i in range(n)]
    queue = iter(bodies)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def post_all() -> None:
            for body in queue:
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(post_all() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


async def pushgate(url: str, n: int, concurrency: int, data_dir: Path, database_url: str) -> float:
    """Deliveries per second of one pushgate worker draining a backlog of n."""
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        outbound_allow="127.0.0.0/8",
        worker_concurrency=concurrency,
        configuration_concurrency=concurrency,  # one configuration: let it use every slot
        secret_key="b" * 40,
    )
    async with running(settings, with_worker=False) as rt:
        await create(
            rt.services,
            "webhook",
            {"name": "bench", "on": True, "config": {"url": url}},
            now=system_clock(),
        )
        for start in range(0, n, BATCH):
            await ingest(
                rt.store,
                {"items": [event(i) for i in range(start, min(n, start + BATCH))]},
                now=system_clock(),
            )
        worker = rt.new_worker()
        started = time.perf_counter()
        delivered = await worker.run_until_idle()
        elapsed = time.perf_counter() - started
    assert delivered == n, f"delivered {delivered} of {n}"
    return n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs; medians reported")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temporary dir")
    args = parser.parse_args()
    configure("warning")

    bases, ours = [], []
    with sink() as receiver:
        for _ in range(args.rounds):
            bases.append(await reference(receiver.url, args.deliveries, args.concurrency))
            with tempfile.TemporaryDirectory() as tmp:
                ours.append(
                    await pushgate(
                        receiver.url,
                        args.deliveries,
                        args.concurrency,
                        Path(tmp),
                        args.database_url,
                    )
                )
    base, mine = statistics.median(bases), statistics.median(ours)
    print(
        f"deliveries={args.deliveries} concurrency={args.concurrency} rounds={args.rounds} "
        f"sink={receiver.kind}"
    )
    print(f"reference aiohttp client : {base:8.0f} deliveries/s (median of {_list(bases)})")
    print(f"pushgate worker          : {mine:8.0f} deliveries/s (median of {_list(ours)})")
    print(f"ratio                    : {mine / base:8.2f}")


def _list(rates: list[float]) -> str:
    return ", ".join(f"{rate:.0f}" for rate in rates)


if __name__ == "__main__":
    asyncio.run(main())
