"""Two receivers in one process, for latency benchmarks.

    python bench/arrivals.py PORT HANG_PORT

PORT answers every POST with 200 and notes when each event arrived (wall clock, by the `_id`
of the JSON body); GET /arrivals returns `{event_id: unix_seconds}`. HANG_PORT accepts every
request and never answers, like a vendor whose load balancer is up and whose backend is not.
Prints "ready" when both listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

from aiohttp import web

arrivals: dict[str, float] = {}
never = asyncio.Event()


async def accept(request: web.Request) -> web.Response:
    body = await request.read()
    arrived = time.time()
    with contextlib.suppress(ValueError, KeyError, TypeError):  # not an event: not noted
        arrivals[json.loads(body)["_id"]] = arrived
    return web.Response(text="ok")


async def listing(_request: web.Request) -> web.Response:
    return web.json_response(arrivals)


async def hang(request: web.Request) -> web.Response:
    await request.read()
    await never.wait()
    return web.Response(text="never")


async def main() -> None:
    healthy = web.Application()
    healthy.router.add_post("/{tail:.*}", accept)
    healthy.router.add_get("/arrivals", listing)
    hanging = web.Application()
    hanging.router.add_route("*", "/{tail:.*}", hang)
    for app, port in ((healthy, int(sys.argv[1])), (hanging, int(sys.argv[2]))):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
