"""A minimal HTTP sink for benchmarks: answers every POST with 200 and counts them.

Run as `python bench/sink.py PORT`; prints "ready" when listening. GET /count returns the count.
"""

from __future__ import annotations

import sys

from aiohttp import web

received = 0


async def accept(request: web.Request) -> web.Response:
    global received
    await request.read()
    received += 1
    return web.Response(text="ok")


async def count(_request: web.Request) -> web.Response:
    return web.json_response({"received": received})


def main() -> None:
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
