"""A minimal HTTP sink for benchmarks: answers every POST with 200 and counts them.

Run as `python bench/sink.py PORT [LATENCY_MS]`; prints "ready" when listening. GET /count
returns the count. LATENCY_MS delays every answer, like a vendor API across the internet.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

received = 0
latency = 0.0


async def accept(request: web.Request) -> web.Response:
    global received
    await request.read()
    if latency:
        await asyncio.sleep(latency)
    received += 1
    return web.Response(text="ok")


async def count(_request: web.Request) -> web.Response:
    return web.json_response({"received": received})


def main() -> None:
    global latency
    latency = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0
    app = web.Application()
    app.router.add_post("/{tail:.*}", accept)
    app.router.add_get("/count", count)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=lambda *_: print("ready", flush=True),
    )


if __name__ == "__main__":
    main()
