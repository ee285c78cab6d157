"""Running `pushgate serve` (and a trivial ASGI app under the same server) for benchmarks.

    async with pushgate_serve(env, "--no-worker") as api:   # api.url, api.token, api.env
        ...
    async with trivial_app() as url:                       # answers every POST 202 `{}`
        ...

Both run as their own processes, with uvicorn under the same settings pushgate uses (`serve`
passes `log_config=None, access_log=False`), so the difference between them is pushgate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from sinks import free_port

TOKEN = "bench-admin-token-0123456789abcdef"
# The trivial app: read the body, answer 202, as cheaply as ASGI allows.
TRIVIAL = """
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})

uvicorn.run(app, host="127.0.0.1", port={port}, log_config=None, access_log=False)
"""


@dataclass(frozen=True)
class Api:
    """A running pushgate: its base URL, admin token and environment."""

    url: str
    token: str
    env: dict[str, str]
    log: Path


async def ready(url: str, path: str = "/readyz", within: float = 60.0) -> None:
    """Wait until `url + path` answers (any status below 500)."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(within):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + path) as response:
                    if response.status < 500:
                        return
            await asyncio.sleep(0.1)


def pushgate_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a pushgate process on SQLite in `data_dir`, `PUSHGATE_*` overrides."""
    return {
        **os.environ,
        "PUSHGATE_DATA_DIR": str(data_dir),
        "PUSHGATE_ADMIN_TOKEN": TOKEN,
        "PUSHGATE_OUTBOUND_ALLOW": "127.0.0.0/8",
        "PUSHGATE_LOG_LEVEL": "warning",
        **{f"PUSHGATE_{key.upper()}": value for key, value in settings.items()},
    }


@contextlib.asynccontextmanager
async def pushgate_serve(*args: str, **settings: str) -> AsyncIterator[Api]:
    """`python -m pushgate serve --port P *args` on a fresh SQLite database."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pushgate-bench-") as tmp:
        env = pushgate_env(Path(tmp) / "data", **settings)
        log = Path(tmp) / "serve.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pushgate", "serve", "--port", str(port), *args,
                env=env, stdout=out, stderr=out,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            await ready(url)
            yield Api(url, TOKEN, env, log)
        finally:
            process.terminate()
            await process.wait()


@contextlib.asynccontextmanager
async def trivial_app() -> AsyncIterator[str]:
    """A bare ASGI app under uvicorn that answers every request 202; yields its base URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", TRIVIAL.replace("{port}", str(port))
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await ready(url, "/")
        yield url
    finally:
        process.terminate()
        await process.wait()
