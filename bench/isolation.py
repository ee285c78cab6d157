"""Isolation: a healthy configuration's delivery latency, alone and beside one that hangs.

    python bench/isolation.py [--rate 50] [--seconds 15] [--rounds 2]

Runs the embedded default as a new user would (`pushgate serve`, SQLite, worker in process)
and two receivers in another process (`arrivals.py`): one answers at once and notes when each
event arrived, one accepts connections and never answers. Single-event POSTs go out at a
steady rate (open loop: a slow answer does not slow the sender). Each phase measures the time
from the client's POST to the event's arrival at the healthy receiver:

    alone   one configuration, to the healthy receiver
    beside  the same, plus a second configuration, matching every event, to the one that hangs

Rounds alternate the phases (the hanging configuration is turned off for "alone" and on for
"beside"), so that a busy moment on the machine does not land on one phase only. Prints p50
and p99 of each phase over all its rounds and the ratio p99 beside / p99 alone (the target is
at most 1.2). Exits 1 if an event did not arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from sample import event
from serving import TOKEN, pushgate_serve
from sinks import free_port

HERE = Path(__file__).resolve().parent
WARM_UP_SECONDS = 2.0
ARRIVAL_WAIT_SECONDS = 30.0


async def start(*command: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=out
        )


async def load(
    session: aiohttp.ClientSession, api: str, prefix: str, rate: float, seconds: float
) -> dict[str, float]:
    """POST one event every 1/rate seconds for `seconds`; returns each event's send time.

    The sender's own garbage collector is paused meanwhile: its full passes (30 to 40 ms in
    this process) fell between noting a send time and sending, and counted as latency.
    """
    sent: dict[str, float] = {}
    headers = {"Authorization": TOKEN}

    async def post(event_id: str) -> None:
        sent[event_id] = time.time()
        async with session.post(
            f"{api}/api/v2/events", json=event_id_event(event_id), headers=headers
        ) as r:
            if r.status != 202:
                raise RuntimeError(f"POST answered {r.status}: {await r.text()}")

    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(f"{prefix}-{i:06d}")))
        await asyncio.gather(*tasks)
    finally:
        gc.enable()
    return sent


def event_id_event(event_id: str) -> dict[str, object]:
    entry = event(0)
    entry["_id"] = event_id
    return entry


async def latencies(
    session: aiohttp.ClientSession, sink: str, sent: dict[str, float]
) -> list[float]:
    """Milliseconds from POST to arrival, once every event arrived (or the wait is over)."""
    deadline = time.perf_counter() + ARRIVAL_WAIT_SECONDS
    while True:
        async with session.get(sink + "/arrivals") as response:
            arrived: dict[str, float] = await response.json()
        missing = [e for e in sent if e not in arrived]
        if not missing or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.2)
    if missing:
        print(f"{len(missing)} of {len(sent)} events never arrived", file=sys.stderr)
        raise SystemExit(1)
    return sorted((arrived[e] - t) * 1000 for e, t in sent.items())


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[round(fraction * 1000) - 1]


async def measure(*, rate: float, seconds: float, rounds: int) -> tuple[list[float], list[float]]:
    """Latencies (ms, sorted) of the healthy configuration alone and beside the hanging one."""
    sink_port, hang_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PUSHGATE_LOG_LEVEL": "warning"}
        receivers = await start(
            sys.executable, str(HERE / "arrivals.py"), str(sink_port), str(hang_port),
            env=env, log=Path(tmp) / "arrivals.log",
        )  # fmt: skip
        try:
            assert receivers.stdout is not None
            assert (await receivers.stdout.readline()).strip() == b"ready"
            sink = f"http://127.0.0.1:{sink_port}"
            async with (
                pushgate_serve() as api,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
            ):

                async def call(method: str, path: str, body: object) -> dict[str, object]:
                    async with session.request(
                        method, api.url + path, json=body, headers={"Authorization": TOKEN}
                    ) as r:
                        assert r.status < 300, await r.text()
                        answer: dict[str, object] = await r.json()
                        return answer

                def webhook(name: str, url: str) -> dict[str, object]:
                    return {"name": name, "on": True, "config": {"url": url}}

                await call("POST", "/api/v2/integrations/webhook", webhook("healthy", sink))
                hanging = await call(
                    "POST",
                    "/api/v2/integrations/webhook",
                    {**webhook("hangs", f"http://127.0.0.1:{hang_port}/"), "on": False},
                )
                await load(session, api.url, "warm", rate, WARM_UP_SECONDS)
                alone: list[float] = []
                beside: list[float] = []
                for round_ in range(rounds):
                    for on, into in ((False, alone), (True, beside)):
                        await call(
                            "PATCH",
                            f"/api/v2/integrations/webhook/{hanging['_id']}",
                            [{"op": "replace", "path": "/on", "value": on}],
                        )
                        prefix = f"r{round_}-{'beside' if on else 'alone'}"
                        sent = await load(session, api.url, prefix, rate, seconds)
                        into.extend(await latencies(session, sink, sent))
        finally:
            receivers.terminate()
            await receivers.wait()
    return sorted(alone), sorted(beside)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=2, help="alone/beside pairs")
    args = parser.parse_args()
    alone, beside = await measure(rate=args.rate, seconds=args.seconds, rounds=args.rounds)
    print(
        f"rate={args.rate:g}/s, {args.rounds} rounds of {args.seconds:g} s per phase, "
        "single-event POSTs, pushgate serve on SQLite"
    )
    for name, values in (("alone", alone), ("beside a hanging one", beside)):
        print(
            f"{name:22}: p50 {percentile(values, 0.5):7.1f} ms   "
            f"p99 {percentile(values, 0.99):7.1f} ms   max {values[-1]:7.1f} ms"
        )
    ratio = percentile(beside, 0.99) / percentile(alone, 0.99)
    print(f"p99 ratio beside/alone : {ratio:7.2f}  (target <= 1.2)")


if __name__ == "__main__":
    asyncio.run(main())
