"""`pushgate worker --metrics-port`: /metrics, /healthz and /readyz for a process with no API.

API nodes answer these three from `api/system.py`; a worker serves the same answers from a
small aiohttp server in its own event loop, so that Prometheus can scrape every process of a
scaled-out install (docs/scaling.md) and an orchestrator can probe workers too. No
authentication, as on API nodes: nothing in the answers is data.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from pushgate.metrics import exposition
from pushgate.runtime import Runtime

log = structlog.get_logger("pushgate.monitoring")


def _app(runtime: Runtime) -> web.Application:
    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_request: web.Request) -> web.Response:
        reason = await runtime.unready()
        if reason is not None:
            return web.json_response({"status": "unavailable", "reason": reason}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(_request: web.Request) -> web.Response:
        body = await exposition(runtime.gauges)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", metrics)
    return app


def listen_url(host: str, port: int) -> str:
    """`http://host:port` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def serving(runtime: Runtime, *, host: str, port: int) -> AsyncIterator[int]:
    """Serve /metrics, /healthz and /readyz at `host:port` (0: a free port) until the block
    ends; yields the port it listens on. OSError when it cannot listen there."""
    runner = web.AppRunner(_app(runtime), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1])
        log.info(
            "metrics.listening", host=host, port=bound, url=listen_url(host, bound) + "/metrics"
        )
        yield bound
    finally:
        await runner.cleanup()
