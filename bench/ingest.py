"""Single-event ingest: how many one-event POSTs per second `pushgate serve` commits.

    python bench/ingest.py [--clients 32] [--seconds 10] [--rounds 2]

`serve --no-worker` on SQLite with one webhook configuration that every event matches; C
keep-alive clients each POST one event at a time, as LaunchDarkly's webhooks and most producers
send, for S seconds. A 202 means committed, so answers per second are events committed per
second. The reference is the same clients POSTing the same bodies to a trivial ASGI app (read
the body, answer 202) under the same uvicorn settings. Rounds alternate the two; medians.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time

import aiohttp

from sample import event
from serving import TOKEN, pushgate_serve, trivial_app


async def hammer(url: str, clients: int, seconds: float, prefix: str) -> float:
    """POSTs per second from `clients` keep-alive loops, each one request at a time."""
    numbers = itertools.count()
    headers = {"Authorization": TOKEN, "Content-Type": "application/json"}
    done = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(stop_at: float) -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                entry = event(0)
                entry["_id"] = f"{prefix}-{next(numbers):08d}"
                async with session.post(url, data=json.dumps(entry), headers=headers) as r:
                    await r.read()
                    if r.status != 202:
                        raise RuntimeError(f"answered {r.status}: {await r.text()}")
                done += 1

        await asyncio.gather(*(client(time.perf_counter() + 1.0) for _ in range(clients)))
        done = 0  # the first second warms connections, caches and the database file
        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(clients)))
        return done / (time.perf_counter() - started)


async def pushgate_rate(clients: int, seconds: float, prefix: str) -> float:
    async with pushgate_serve("--no-worker") as api:
        async with aiohttp.ClientSession() as session:
            body = {"name": "sink", "on": True, "config": {"url": "http://127.0.0.1:9/hook"}}
            async with session.post(
                f"{api.url}/api/v2/integrations/webhook",
                json=body,
                headers={"Authorization": TOKEN},
            ) as r:
                assert r.status == 201, await r.text()
        return await hammer(f"{api.url}/api/v2/events", clients, seconds, prefix)


async def reference_rate(clients: int, seconds: float, prefix: str) -> float:
    async with trivial_app() as url:
        return await hammer(f"{url}/api/v2/events", clients, seconds, prefix)


async def measure(clients: int, seconds: float, rounds: int) -> tuple[list[float], list[float]]:
    """(reference rates, pushgate rates), a round each, alternating."""
    references, ours = [], []
    for round_ in range(rounds):
        references.append(await reference_rate(clients, seconds, f"ref{round_}"))
        ours.append(await pushgate_rate(clients, seconds, f"pg{round_}"))
    return references, ours


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    references, ours = await measure(args.clients, args.seconds, args.rounds)
    base, mine = statistics.median(references), statistics.median(ours)
    print(f"clients={args.clients} seconds={args.seconds:g} rounds={args.rounds}")
    print(f"trivial ASGI app (202)   : {base:8.0f} POSTs/s")
    print(f"pushgate serve --no-worker: {mine:8.0f} events committed/s")
    print(f"ratio                    : {mine / base:8.2f}  (target >= 0.5)")


if __name__ == "__main__":
    asyncio.run(main())
