"""The `pushgate` command: serve, worker, migrate, token."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from pushgate.app import create_app, running
from pushgate.logs import configure
from pushgate.settings import Settings
from pushgate.store import Role, Store

app = typer.Typer(
    help="pushgate: change events in, deliveries to your tools out.", no_args_is_help=True
)
token_app = typer.Typer(help="Manage API access tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
err = Console(stderr=True)


def _settings() -> Settings:
    settings = Settings()
    configure(settings.log_level)
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [PUSHGATE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [PUSHGATE_PORT].")] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run a delivery worker in this process.")
    ] = True,
) -> None:
    """Run the API and web UI (and, by default, a delivery worker). Migrates the database first."""
    settings = _settings()
    application = create_app(settings, with_worker=worker)
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 1,
    )


@app.command("worker")
def worker_command() -> None:
    """Run a delivery worker only (no API). Stops gracefully on SIGTERM or Ctrl-C."""
    settings = _settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with running(settings, with_worker=True) as runtime:
            await stop.wait()
            del runtime

    asyncio.run(main())


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = _settings()

    async def main() -> None:
        store = await Store.open(settings)
        await store.close()

    asyncio.run(main())
    err.print("[green]database is up to date[/green]")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who or what the token is for.")],
    role: Annotated[Role, typer.Option(help="reader, writer or admin.")] = Role.WRITER,
) -> None:
    """Create a token and print only its value on stdout (it is not shown again)."""
    settings = _settings()

    async def main() -> str:
        from pushgate.clock import system_clock

        store = await Store.open(settings)
        try:
            _, value = await store.tokens.create(name=name, role=role, now=system_clock())
        finally:
            await store.close()
        return value

    typer.echo(asyncio.run(main()))
