"""The `pushgate` command: serve, worker, migrate, token, status, replay, validate, source."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, Any, TypeVar

import structlog
import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pushgate import sources
from pushgate.app import create_app
from pushgate.clock import system_clock
from pushgate.configurations import health_of, open_config
from pushgate.domain import DeliveryState, Role, SourceKind
from pushgate.errors import InvalidRequest, RequestError
from pushgate.limits import NAME_LIMIT, check_text
from pushgate.logs import configure
from pushgate.replay import ReplayWindow
from pushgate.replay import replay as run_replay
from pushgate.runtime import running
from pushgate.sealing import load_secret_box
from pushgate.settings import Settings
from pushgate.store import Store
from pushgate.validation import validate as run_validation

app = typer.Typer(
    help="pushgate: change events in, deliveries to your tools out.", no_args_is_help=True
)
token_app = typer.Typer(help="Manage API access tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
err = Console(stderr=True)
log = structlog.get_logger("pushgate.cli")
T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as error:
        # One line per wrong variable, naming it; never the value (it may be a secret).
        for problem in error.errors():
            where = f"PUSHGATE_{str(problem['loc'][0]).upper()}" if problem["loc"] else "settings"
            err.print(f"[red]{where}[/red]: {problem['msg'].removeprefix('Value error, ')}")
        raise typer.Exit(2) from None
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
    """Run the API and web UI (and, by default, a delivery worker). Migrates the database first.

    SIGTERM: stop accepting connections, finish open requests, let the worker finish or release
    its in-flight deliveries within PUSHGATE_SHUTDOWN_GRACE, exit 0.
    """
    settings = _settings()
    application = create_app(settings, with_worker=worker)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler
    # that was there before it. Ours makes that an orderly exit 0: the stop was asked for.
    # (It also covers a SIGTERM before uvicorn took over, when there is nothing to drain.)
    previous = signal.signal(signal.SIGTERM, _exit_requested)
    try:
        uvicorn.run(
            application,
            host=host or settings.host,
            port=port or settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace) + 1,
            # The client address (failed sign-ins are counted per address) and the scheme come
            # from X-Forwarded-For and -Proto only when a trusted proxy sent them.
            proxy_headers=True,
            forwarded_allow_ips=[str(network) for network in settings.trusted_proxies],
        )
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_requested(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


@app.command("worker")
def worker_command() -> None:
    """Run a delivery worker only (no API). Stops gracefully on SIGTERM or Ctrl-C.

    Stopping: claim nothing more, let in-flight deliveries finish within PUSHGATE_SHUTDOWN_GRACE,
    record them, release the rest, exit 0. Exits 1 if the worker itself failed.
    """
    settings = _settings()

    async def main() -> bool:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with running(settings, with_worker=True) as runtime:
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([stopping, *runtime.tasks], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        failures = [task.exception() for task in runtime.tasks if not task.cancelled()]
        for failure in failures:
            if failure is not None:
                log.error("worker.failed", error=repr(failure), exc_info=failure)
        return not any(failures)

    if not asyncio.run(main()):
        raise typer.Exit(1)


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
    try:
        check_text(name, "name", limit=NAME_LIMIT)
    except InvalidRequest as error:
        raise typer.BadParameter(error.message, param_hint="--name") from None

    async def main() -> str:
        store = await Store.open(settings)
        try:
            _, value = await store.tokens.create(name=name, role=role, now=system_clock())
        finally:
            await store.close()
        return value

    typer.echo(asyncio.run(main()))


@app.command()
def status() -> None:
    """Show every configuration's health and status: pending deliveries, success and error
    counts, most recent of each."""
    settings = _settings()

    async def main() -> None:
        async with running(settings, with_worker=False) as runtime:
            rows = await runtime.store.configurations.all()
        now = system_clock()
        # Four columns, each a few short lines, so that it reads at 80 columns.
        table = Table("configuration", "health", "delivered", "errors", show_lines=True)
        for row in rows:
            st, health = row.status, health_of(row)
            lines = [f"[bold]{health.state.value}[/bold]", f"{health.pending} pending"]
            if health.resumes_at is not None:
                lines.append(f"resumes {_ago(health.resumes_at, now)}")
            if health.reason:
                lines.append(f"[dim]{escape(health.reason)}[/dim]")
            table.add_row(
                f"{escape(row.name)}\n[dim]{row.integration_key}[/dim]\n{row.id}",
                "\n".join(lines),
                f"{st.success_count}\n{_ago(st.last_success, now)}",
                f"{st.error_count}\n{_ago(st.last_error, now)}",
            )
        Console().print(table)

    asyncio.run(main())


@app.command()
def replay(
    integration_key: Annotated[str, typer.Argument(help="e.g. webhook, datadog")],
    configuration_id: Annotated[str, typer.Argument(help="the configuration's _id")],
    since: Annotated[
        str | None,
        typer.Option(help="Event time from: 2h, 30m, 7d ago, an ISO date-time, or Unix ms."),
    ] = None,
    until: Annotated[str | None, typer.Option(help="Event time before (same forms).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before queueing.")] = False,
) -> None:
    """Send a configuration's failed deliveries again, then show them going out.

    Matches the deliveries that ended failed (retries exhausted or refused) whose event time
    is in the window; each starts a fresh retry schedule. A running worker sends them.
    """
    settings = _settings()

    async def main() -> bool:
        async with running(settings, with_worker=False) as runtime:
            row = await runtime.store.configurations.get(integration_key, configuration_id)
            now = runtime.clock()
            window = ReplayWindow(_moment(since, now, "--since"), _moment(until, now, "--until"))
            found = await run_replay(
                runtime.store, row.id, dataclasses.replace(window, dry_run=True), now=now
            )
            err.print(f"{found.matched} failed deliveries of “{row.name}” match.")
            if not found.matched:
                return True
            if not yes and not typer.confirm("Send them again?"):
                err.print("Nothing was queued.")
                return False
            done = await run_replay(runtime.store, row.id, window, now=runtime.clock())
            err.print(
                f"Queued {done.queued}. Waiting for a worker to send them "
                "(Ctrl-C stops watching; they stay queued)."
            )
            states = await _watch(runtime.store, done.delivery_ids)
        failed = states[DeliveryState.FAILED] + states[DeliveryState.CANCELLED]
        err.print(
            f"[green]{states[DeliveryState.SUCCEEDED]} delivered[/green], "
            f"{'[red]' if failed else ''}{failed} failed again{'[/red]' if failed else ''}."
        )
        return not failed

    try:
        ok = asyncio.run(main())
    except RequestError as error:
        err.print(f"[red]{error.message}[/red]")
        raise typer.Exit(2) from None
    raise typer.Exit(0 if ok else 1)


async def _watch(store: Store, delivery_ids: list[int]) -> dict[DeliveryState, int]:
    """A progress bar until none of these deliveries is pending; their final states."""
    with Progress(
        TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        bar = progress.add_task("replay", total=len(delivery_ids))
        while True:
            states = await store.deliveries.states(delivery_ids)
            progress.update(bar, completed=len(delivery_ids) - states[DeliveryState.PENDING])
            if not states[DeliveryState.PENDING]:
                return states
            await asyncio.sleep(WATCH_INTERVAL)


def _moment(value: str | None, now: int, option: str) -> int | None:
    """`2h` / `30m` / `7d` / `90s` ago, an ISO 8601 date-time (UTC unless it says), or Unix ms."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    unit = _UNITS.get(text[-1:])
    if unit is not None and text[:-1].replace(".", "", 1).isdigit():
        return now - round(float(text[:-1]) * unit)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{option}: {value!r} is not a time; use 2h, 30m, 7d, an ISO date-time or Unix ms"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


@app.command()
def validate(
    integration_key: Annotated[str, typer.Argument(help="e.g. webhook, datadog")],
    configuration_id: Annotated[str, typer.Argument(help="the configuration's _id")],
) -> None:
    """Send the test event to a saved configuration and report the outcome (exit 1 on failure)."""
    settings = _settings()

    async def main() -> bool:
        async with running(settings, with_worker=False) as runtime:
            row = await runtime.store.configurations.get(integration_key, configuration_id)
            integration = runtime.catalog.get(integration_key)
            config = open_config(runtime.services, row)
            report = await run_validation(runtime.engine, integration, config, runtime.clock)
        Console().print_json(data=report.to_json())
        return report.ok

    try:
        ok = asyncio.run(main())
    except RequestError as error:
        err.print(f"[red]{error.message}[/red]")
        raise typer.Exit(2) from None
    raise typer.Exit(0 if ok else 1)


# Milliseconds per unit of `--since 2h` and the like.
_UNITS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# Seconds between two looks at a replay's progress.
WATCH_INTERVAL = 0.5


def _ago(ms: int | None, now: int) -> str:
    """ "3m ago", "in 20s", "2026-11-30" (older than a week), or "never"."""
    if ms is None:
        return "never"
    seconds = (now - ms) / 1000
    if abs(seconds) >= 7 * 86_400:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")
    unit, size = next(
        (
            (unit, size)
            for unit, size in (("d", 86_400), ("h", 3600), ("m", 60))
            if abs(seconds) >= size
        ),
        ("s", 1),
    )
    amount = f"{int(abs(seconds) // size)}{unit}"
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


# --- pushgate source: event sources (signed endpoints that LaunchDarkly posts to) ----------

source_app = typer.Typer(
    help="Manage event sources: signed endpoints LaunchDarkly's webhooks post to.",
    no_args_is_help=True,
)
app.add_typer(source_app, name="source")
# `--secret -` reads the secret from standard input (it stays out of the shell's history).
FROM_STDIN = "-"


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    store = await Store.open(settings)
    try:
        return await work(store)
    finally:
        await store.close()


def _run_or_exit(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; a refused request is printed and exits 2."""
    try:
        return asyncio.run(work)
    except RequestError as error:
        err.print(f"[red]{escape(error.message)}[/red]")
        raise typer.Exit(2) from None


@source_app.command("create")
def source_create(
    name: Annotated[str, typer.Option(help="Who posts here, e.g. “LaunchDarkly production”.")],
    kind: Annotated[SourceKind, typer.Option(help="How the sender signs.")],
    secret: Annotated[
        str | None,
        typer.Option(help="The signing secret; `-` reads it from stdin. Omit: one is generated."),
    ] = None,
) -> None:
    """Create a source and print its id, ingest URL and secret (the secret is not shown again).

    The URL starts with PUSHGATE_PUBLIC_URL; without it only the path is printed.
    """
    settings = _settings()
    if secret == FROM_STDIN:
        secret = sys.stdin.readline().strip()
    body = {"name": name, "kind": kind.value, "secret": secret}
    box = load_secret_box(settings)
    row, value = _run_or_exit(
        _with_store(settings, lambda store: sources.create(store, box, body, now=system_clock()))
    )
    view = sources.source_json(row, base_url=settings.public_url or "", secret=value)
    shown = {"id": row.id, "kind": row.kind.value, "ingest URL": view["ingestUrl"], "secret": value}
    for label, text in shown.items():
        typer.echo(f"{label:<11} {text}")
    err.print("The secret is shown this once; give it to the sender (docs/sources.md).")
    if settings.public_url is None:
        err.print("Set PUSHGATE_PUBLIC_URL to have the whole ingest URL printed.")


@source_app.command("list")
def source_list() -> None:
    """Show every source: name and id, kind, ingest URL, events received and the last one."""
    settings = _settings()
    rows = _run_or_exit(_with_store(settings, lambda store: store.sources.all()))
    now = system_clock()
    table = Table("source", "kind", "ingest URL", "received", show_lines=True)
    for row in rows:
        view = sources.source_json(row, base_url=settings.public_url or "")
        last = _ago(row.last_event_at, now)
        if row.last_event_id:
            last += f"\n[dim]{escape(row.last_event_id)}[/dim]"
        table.add_row(
            f"{escape(row.name)}\n[dim]{row.id}[/dim]",
            row.kind.value,
            view["ingestUrl"],
            f"{row.events_received}\n{last}",
        )
    Console().print(table)


@source_app.command("delete")
def source_delete(
    source_id: Annotated[str, typer.Argument(help="the source's _id")],
) -> None:
    """Delete a source: its URL stops taking events (what it brought in stays)."""
    settings = _settings()
    _run_or_exit(_with_store(settings, lambda store: store.sources.delete(source_id)))
    err.print(f"Deleted source {source_id}.")
