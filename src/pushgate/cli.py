"""The `pushgate` command: serve, worker, migrate, status, errors, replay, validate, token,
backup and rotate-key (docs/cli.md).

Start-up stays light: this module imports Typer and little else, so `pushgate --help` and
`--version` answer at once; each command imports what it needs when it runs.

A mistake in the settings or around them (problems.py) is one or two lines on stderr that name
the variable, the option or the part of the database URL at fault and what to do, and exit
code 2; its traceback only with PUSHGATE_LOG_LEVEL=debug. Commands that only read or change an
existing database refuse to create a new SQLite file (`missing_database`): run from another
directory, they say so instead of starting an empty database there.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from pushgate import __version__
from pushgate.domain import Role

if TYPE_CHECKING:
    from pushgate.runtime import Runtime
    from pushgate.settings import Settings
    from pushgate.store import Store

T = TypeVar("T")
app = typer.Typer(
    help="pushgate: change events in, deliveries to your tools out.",
    no_args_is_help=True,
    # A bug's traceback, plainly: the pretty one shows local variables, and those may hold a
    # database URL with its password.
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Manage API access tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
# Exit codes: 1 for "it ran and the answer is no" (a delivery failed, a worker crashed), 2 for
# a mistake in how it was asked (settings, database, arguments).
EXIT_MISTAKE = 2
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape).")]
IntegrationArg = Annotated[str, typer.Argument(help="e.g. webhook, datadog")]
ConfigurationArg = Annotated[str, typer.Argument(help="the configuration's _id")]
# Milliseconds per unit of `--since 2h` and the like.
_UNITS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# Seconds between two looks at a replay's progress.
WATCH_INTERVAL = 0.5
# Error-log entries `pushgate errors` shows unless told otherwise, and at most.
ERRORS_SHOWN = 20
ERRORS_MAX = 100


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pushgate {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """pushgate: change events in, deliveries to your tools out."""


# --- settings, mistakes, the database -------------------------------------------------------


def _settings(**options: tuple[str, Any]) -> Settings:
    """The settings from the environment, with command-line `options` (field: (option name,
    value), None values left out) on top; logging set up. A mistake exits 2, naming it."""
    from pydantic import ValidationError

    from pushgate.logs import configure
    from pushgate.settings import Settings, settings_problems

    given = {field: value for field, (_, value) in options.items() if value is not None}
    try:
        settings = Settings(**given)
    except ValidationError as error:
        lines = settings_problems(error)
        for field, (option, _) in options.items():  # name the option as well as the variable
            variable = f"PUSHGATE_{field.upper()}"
            lines = [line.replace(variable, f"{option} / {variable}", 1) for line in lines]
        _fail(lines, error, debug=None)
    configure(settings.log_level, format=settings.log_format)
    return settings


def _fail(
    lines: list[str] | tuple[str, ...], error: BaseException, *, debug: bool | None
) -> NoReturn:
    """Print a mistake's lines (and, when debugging, its traceback) and exit 2."""
    if debug is None:
        debug = os.environ.get("PUSHGATE_LOG_LEVEL", "").strip().lower() == "debug"
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    for line in lines:
        sys.stderr.write(line + "\n")
    raise typer.Exit(EXIT_MISTAKE)


def _run(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; a mistake it reveals (a database that cannot be opened, no such
    configuration) exits 2 with its explanation."""
    import asyncio

    from pushgate.problems import problem_of

    try:
        return asyncio.run(work)
    except Exception as error:
        problem = problem_of(error, settings)
        if problem is None:
            raise
        _fail(problem.lines, error, debug=settings.log_level == "debug")


def _existing_database(settings: Settings) -> None:
    """Exit 2 unless the SQLite database the settings name exists (PostgreSQL: always)."""
    from pushgate.problems import missing_database

    problem = missing_database(settings)
    if problem is not None:
        _fail(problem.lines, problem, debug=settings.log_level == "debug")


def _say_database(settings: Settings) -> None:
    """Which database a command uses, on stderr (so that --json output stays clean)."""
    sys.stderr.write(f"database: {settings.database_label()}\n")


def _log_database(settings: Settings) -> None:
    import structlog

    structlog.get_logger("pushgate.cli").info("database.using", database=settings.database_label())


def _console() -> Any:
    from rich.console import Console

    return Console()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


# --- serve, worker, migrate ------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [PUSHGATE_HOST].")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on; 0: a free one [PUSHGATE_PORT].")
    ] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run a delivery worker in this process.")
    ] = True,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            "--trusted-proxies",
            help="Comma-separated CIDRs of reverse proxies whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed [PUSHGATE_TRUSTED_PROXIES].",
        ),
    ] = None,
) -> None:
    """Run the API and web UI (and, by default, a delivery worker). Migrates the database first.

    SIGTERM: stop accepting connections, finish open requests, let the worker finish or release
    its in-flight deliveries within PUSHGATE_SHUTDOWN_GRACE, exit 0.
    """
    import signal

    settings = _settings(
        host=("--host", host),
        port=("--port", port),
        trusted_proxies=("--forwarded-allow-ips", trusted_proxies),
    )
    import structlog
    import uvicorn

    from pushgate.app import create_app
    from pushgate.monitoring import listen_url
    from pushgate.store import Store

    async def migrate_first() -> None:
        store = await Store.open(settings)
        await store.close()

    # Migrated (and its mistakes explained) before uvicorn starts, which would otherwise
    # report them as a failed lifespan.
    _log_database(settings)
    new = settings.sqlite_path is not None and not settings.sqlite_path.exists()
    _run(settings, migrate_first())
    if new:
        structlog.get_logger("pushgate.cli").warning(
            "database.created", database=settings.database_label()
        )
    sock = _listen(settings.host, settings.port)
    bound = int(sock.getsockname()[1])
    structlog.get_logger("pushgate.cli").info(
        "server.listening", host=settings.host, port=bound, url=listen_url(settings.host, bound)
    )
    config = uvicorn.Config(
        create_app(settings, with_worker=worker, own_process=True),
        log_config=None,
        access_log=False,  # RequestMetrics logs requests (PUSHGATE_ACCESS_LOG), structured
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 1,
        # The client address (failed sign-ins are counted per address) and the scheme come
        # from X-Forwarded-For and -Proto only when a trusted proxy sent them.
        proxy_headers=True,
        forwarded_allow_ips=[str(network) for network in settings.trusted_proxies],
    )
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler
    # that was there before it. Ours makes that an orderly exit 0: the stop was asked for.
    # (It also covers a SIGTERM before uvicorn took over, when there is nothing to drain.)
    previous = signal.signal(signal.SIGTERM, _exit_requested)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)


def _listen(host: str, port: int) -> Any:
    """A socket bound to host:port (port 0: a free one); a busy port exits 2, explained."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        _fail(
            [
                f"--host/--port (PUSHGATE_HOST, PUSHGATE_PORT): cannot listen on {host}:{port} "
                f"({error.strerror}); choose another port (0 picks a free one) or stop what "
                "holds it"
            ],
            error,
            debug=None,
        )
    sock.set_inheritable(True)
    return sock


def _exit_requested(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


@app.command("worker")
def worker_command(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve /metrics, /healthz and /readyz on this port at PUSHGATE_HOST; 0: a "
            "free one [PUSHGATE_WORKER_METRICS_PORT]."
        ),
    ] = None,
) -> None:
    """Run a delivery worker only (no API). Stops gracefully on SIGTERM or Ctrl-C.

    Stopping: claim nothing more, let in-flight deliveries finish within PUSHGATE_SHUTDOWN_GRACE,
    record them, release the rest, exit 0. Exits 1 if the worker itself failed.
    """
    settings = _settings(worker_metrics_port=("--metrics-port", metrics_port))
    _existing_database(settings)
    _log_database(settings)
    import asyncio
    import signal

    import structlog

    from pushgate.runtime import running

    log = structlog.get_logger("pushgate.cli")

    async def main() -> bool:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with (
            running(settings, with_worker=True, own_process=True) as runtime,
            contextlib.AsyncExitStack() as monitoring,
        ):
            if settings.worker_metrics_port is not None:
                await monitoring.enter_async_context(_metrics_server(runtime, settings))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([stopping, *runtime.tasks], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        failures = [task.exception() for task in runtime.tasks if not task.cancelled()]
        for failure in failures:
            if failure is not None:
                log.error("worker.failed", error=repr(failure), exc_info=failure)
        return not any(failures)

    if not _run(settings, main()):
        raise typer.Exit(1)


@contextlib.asynccontextmanager
async def _metrics_server(runtime: Runtime, settings: Settings) -> AsyncIterator[int]:
    """The worker's /metrics, /healthz and /readyz; a busy port explained like `serve`'s."""
    from pushgate.monitoring import serving
    from pushgate.problems import Problem

    host, port = settings.host, settings.worker_metrics_port or 0
    try:
        server = serving(runtime, host=host, port=port)
        bound = await server.__aenter__()
    except OSError as error:
        raise Problem(
            f"--metrics-port (PUSHGATE_WORKER_METRICS_PORT): cannot listen on {host}:{port} "
            f"({error.strerror}); choose another port (0 picks a free one) or stop what holds it"
        ) from error
    try:
        yield bound
    finally:
        await server.__aexit__(None, None, None)


@app.command()
def migrate(
    create: Annotated[
        bool,
        typer.Option("--create", help="Create the SQLite database when there is none yet."),
    ] = False,
) -> None:
    """Create or upgrade the database schema, and say which database that is.

    On SQLite it needs an existing database unless --create (run from the wrong directory it
    would otherwise start an empty one there); on PostgreSQL it creates the tables in an empty
    database or schema.
    """
    settings = _settings()
    _say_database(settings)
    if not create:
        _existing_database(settings)
    from pushgate.store import Store

    async def main() -> str | None:
        store = await Store.open(settings)
        try:
            return await store.revision()
        finally:
            await store.close()

    revision = _run(settings, main())
    sys.stderr.write(f"the database is up to date (schema revision {revision})\n")


# --- status, errors, replay, validate --------------------------------------------------------


@app.command()
def status(json_output: JsonOption = False) -> None:
    """Show every configuration's health and status: pending deliveries, success and error
    counts, most recent of each."""
    settings = _settings()
    _existing_database(settings)
    _say_database(settings)
    from pushgate.clock import system_clock
    from pushgate.configurations import configuration_json
    from pushgate.display import status_table
    from pushgate.runtime import running

    async def main() -> None:
        async with running(settings, with_worker=False) as runtime:
            rows = await runtime.store.configurations.all()
            if json_output:
                _print_json({"items": [configuration_json(runtime.services, r) for r in rows]})
            else:
                _console().print(status_table(rows, system_clock()))

    _run(settings, main())


@app.command()
def errors(
    integration_key: IntegrationArg,
    configuration_id: ConfigurationArg,
    limit: Annotated[
        int, typer.Option(min=1, max=ERRORS_MAX, help="How many entries, newest first.")
    ] = ERRORS_SHOWN,
    json_output: JsonOption = False,
) -> None:
    """Show a configuration's error log, newest first: when, the answer, what was wrong."""
    settings = _settings()
    _existing_database(settings)
    from pushgate.clock import system_clock
    from pushgate.configurations import error_json
    from pushgate.display import error_table
    from pushgate.runtime import running

    async def main() -> None:
        async with running(settings, with_worker=False) as runtime:
            runtime.catalog.get(integration_key)
            row = await runtime.store.configurations.get(integration_key, configuration_id)
            entries = await runtime.store.configurations.errors(row.id, limit=limit)
        if json_output:
            _print_json(
                {
                    "items": [error_json(entry) for entry in entries],
                    "totalCount": row.status.error_count,
                }
            )
            return
        sys.stderr.write(
            f"“{row.name}”: {row.status.error_count} errors in all; the last {len(entries)}:\n"
        )
        _console().print(error_table(entries, system_clock()))

    _run(settings, main())


@app.command()
def replay(
    integration_key: IntegrationArg,
    configuration_id: ConfigurationArg,
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
    _existing_database(settings)
    import dataclasses

    from rich.console import Console

    from pushgate.domain import DeliveryState
    from pushgate.replay import ReplayWindow
    from pushgate.replay import replay as run_replay
    from pushgate.runtime import running

    err = Console(stderr=True)

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
            states = await _watch(runtime.store, done.delivery_ids, err)
        failed = states[DeliveryState.FAILED] + states[DeliveryState.CANCELLED]
        err.print(
            f"[green]{states[DeliveryState.SUCCEEDED]} delivered[/green], "
            f"{'[red]' if failed else ''}{failed} failed again{'[/red]' if failed else ''}."
        )
        return not failed

    raise typer.Exit(0 if _run(settings, main()) else 1)


async def _watch(store: Store, delivery_ids: list[int], err: Any) -> dict[Any, int]:
    """A progress bar until none of these deliveries is pending; their final states."""
    import asyncio

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from pushgate.domain import DeliveryState

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
    from datetime import UTC, datetime

    from pushgate.errors import InvalidRequest

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
    integration_key: IntegrationArg,
    configuration_id: ConfigurationArg,
    json_output: JsonOption = False,
) -> None:
    """Send the test event to a saved configuration and report the outcome (exit 1 on failure)."""
    settings = _settings()
    _existing_database(settings)
    from pushgate.configurations import open_config
    from pushgate.display import validation_lines
    from pushgate.runtime import running
    from pushgate.validation import validate as run_validation

    async def main() -> bool:
        async with running(settings, with_worker=False) as runtime:
            row = await runtime.store.configurations.get(integration_key, configuration_id)
            integration = runtime.catalog.get(integration_key)
            config = open_config(runtime.services, row)
            report = await run_validation(runtime.engine, integration, config, runtime.clock)
        if json_output:
            _print_json(report.to_json())
        else:
            console = _console()
            for line in validation_lines(report):
                console.print(line)
        return report.ok

    raise typer.Exit(0 if _run(settings, main()) else 1)


# --- tokens ----------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who or what the token is for.")],
    role: Annotated[Role, typer.Option(help="reader, writer or admin.")] = Role.WRITER,
) -> None:
    """Create a token and print only its value on stdout (it is not shown again)."""
    settings = _settings()
    _existing_database(settings)
    from pushgate.clock import system_clock
    from pushgate.errors import InvalidRequest
    from pushgate.limits import NAME_LIMIT, check_text
    from pushgate.store import Store

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

    typer.echo(_run(settings, main()))


@token_app.command("list")
def token_list(json_output: JsonOption = False) -> None:
    """List the tokens (never their values): id, name, role, created."""
    settings = _settings()
    _existing_database(settings)
    from pushgate.clock import system_clock
    from pushgate.display import token_table
    from pushgate.store import Store

    async def main() -> None:
        store = await Store.open(settings)
        try:
            tokens = await store.tokens.all()
        finally:
            await store.close()
        if json_output:
            _print_json({"items": [token.to_json() for token in tokens]})
        else:
            _console().print(token_table(tokens, system_clock()))

    _run(settings, main())


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="the token's id (pushgate token list)")],
) -> None:
    """Revoke a token: it stops working at once, and web sessions signed in with it end."""
    settings = _settings()
    _existing_database(settings)
    from pushgate.store import Store

    async def main() -> None:
        store = await Store.open(settings)
        try:
            await store.tokens.revoke(token_id)
        finally:
            await store.close()

    _run(settings, main())
    sys.stderr.write(f"token {token_id} revoked\n")


# --- backup, rotate-key ----------------------------------------------------------------------


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(help="A new directory to write the backup into.")],
) -> None:
    """Copy the SQLite database (safe while pushgate runs) and its secret key into PATH.

    PATH becomes a data directory: to restore, stop pushgate and use it as PUSHGATE_DATA_DIR
    (or copy its files into the data directory). PostgreSQL: use pg_dump (docs/operations.md).
    """
    settings = _settings()
    _existing_database(settings)
    _say_database(settings)
    from pushgate.backup import back_up

    done = _run(settings, back_up(settings, path))
    sys.stderr.write(
        f"backed up {done.configurations} configurations ({done.size:,} bytes) to "
        f"{done.directory}: {', '.join(done.files)}\n"
    )
    if not done.keys_included:
        sys.stderr.write(
            "The secrets are sealed under PUSHGATE_SECRET_KEY, which is not in the backup: "
            "keep it with the backup, or the secrets cannot be opened.\n"
        )
    sys.stderr.write(
        f"Restore: stop pushgate, then start it with PUSHGATE_DATA_DIR={done.directory} (or "
        "copy these files into its data directory).\n"
    )


@app.command("rotate-key")
def rotate_key() -> None:
    """Seal every configuration's secrets again under a new secret key.

    Key file (secret.key): makes a new key, keeps the old one accepted until every secret is
    sealed again, then drops it; running processes follow. PUSHGATE_SECRET_KEY: set it to the
    new key and PUSHGATE_PREVIOUS_SECRET_KEY to the old one in every process first; this then
    re-seals everything (docs/operations.md#rotating-the-secret-key). Exit 1 when some
    secrets open under no key it has: the rotation is not ended then.
    """
    settings = _settings()
    _existing_database(settings)
    _say_database(settings)
    from pushgate import rotation
    from pushgate.problems import Problem
    from pushgate.sealing import load_secret_box
    from pushgate.store import Store

    async def main() -> rotation.Rotation:
        box = load_secret_box(settings)
        keyring = box.keyring
        if not keyring.from_files and settings.previous_secret_key is None:
            raise Problem(
                "PUSHGATE_SECRET_KEY comes from the environment, which pushgate cannot change: "
                "set it to a new key and PUSHGATE_PREVIOUS_SECRET_KEY to the current one in "
                "every process, then run rotate-key again",
                "(docs/operations.md#rotating-the-secret-key)",
            )
        store = await Store.open(settings)
        try:
            if keyring.from_files:
                began = rotation.begin(keyring)
                sys.stderr.write(
                    f"{'started' if began else 'resuming'} the rotation of {keyring.primary_path}\n"
                )
            done = await rotation.reseal(store, box)
        finally:
            await store.close()
        if done.complete and keyring.from_files:
            rotation.end(keyring)
        return done

    done = _run(settings, main())
    sys.stderr.write(
        f"{done.resealed} configurations sealed again, {done.current} were already under the "
        "new key\n"
    )
    if not done.complete:
        stuck = done.unreadable or done.changing
        sys.stderr.write(
            f"{len(stuck)} configurations could not be sealed again ({', '.join(stuck[:3])}); "
            "the old key stays accepted. Run rotate-key again; see docs/operations.md.\n"
        )
        raise typer.Exit(1)
    if settings.secret_key is not None:
        sys.stderr.write(
            "Every secret opens under PUSHGATE_SECRET_KEY now: remove "
            "PUSHGATE_PREVIOUS_SECRET_KEY from every process to end the rotation.\n"
        )
    else:
        sys.stderr.write("The rotation has ended: the old key is no longer accepted.\n")


# --- event sources (signed endpoints that LaunchDarkly posts to) ------------------------------

source_app = typer.Typer(
    help="Manage event sources: signed endpoints LaunchDarkly's webhooks post to.",
    no_args_is_help=True,
)
app.add_typer(source_app, name="source")
# `--secret -` reads the secret from standard input (it stays out of the shell's history).
FROM_STDIN = "-"


@source_app.command("create")
def source_create(
    name: Annotated[str, typer.Option(help="Who posts here, e.g. “LaunchDarkly production”.")],
    kind: Annotated[
        str, typer.Option(help="How the sender signs: launchdarkly-webhook or standard-webhooks.")
    ],
    secret: Annotated[
        str | None,
        typer.Option(help="The signing secret; `-` reads it from stdin. Omit: one is generated."),
    ] = None,
) -> None:
    """Create a source and print its id, ingest URL and secret (the secret is not shown again).

    The URL starts with PUSHGATE_PUBLIC_URL; without it only the path is printed.
    """
    settings = _settings()
    _existing_database(settings)
    from pushgate import sources
    from pushgate.clock import system_clock
    from pushgate.sealing import load_secret_box
    from pushgate.store import Store

    if secret == FROM_STDIN:
        secret = sys.stdin.readline().strip()
    body = {"name": name, "kind": kind, "secret": secret}
    box = load_secret_box(settings)

    async def main() -> Any:
        store = await Store.open(settings)
        try:
            return await sources.create(store, box, body, now=system_clock())
        finally:
            await store.close()

    row, value = _run(settings, main())
    view = sources.source_json(row, base_url=settings.public_url or "", secret=value)
    shown = {"id": row.id, "kind": row.kind.value, "ingest URL": view["ingestUrl"], "secret": value}
    for label, text in shown.items():
        typer.echo(f"{label:<11} {text}")
    sys.stderr.write("The secret is shown this once; give it to the sender (docs/sources.md).\n")
    if settings.public_url is None:
        sys.stderr.write("Set PUSHGATE_PUBLIC_URL to have the whole ingest URL printed.\n")


@source_app.command("list")
def source_list(json_output: JsonOption = False) -> None:
    """Show every source: name and id, kind, ingest URL, events received and the last one."""
    settings = _settings()
    _existing_database(settings)
    from rich.markup import escape
    from rich.table import Table

    from pushgate import sources
    from pushgate.clock import system_clock
    from pushgate.display import ago
    from pushgate.store import Store

    async def main() -> Any:
        store = await Store.open(settings)
        try:
            return await store.sources.all()
        finally:
            await store.close()

    rows = _run(settings, main())
    views = [sources.source_json(row, base_url=settings.public_url or "") for row in rows]
    if json_output:
        _print_json({"items": views})
        return
    now = system_clock()
    table = Table("source", "kind", "ingest URL", "received", show_lines=True)
    for row, view in zip(rows, views, strict=True):
        last = ago(row.last_event_at, now)
        if row.last_event_id:
            last += f"\n[dim]{escape(row.last_event_id)}[/dim]"
        table.add_row(
            f"{escape(row.name)}\n[dim]{row.id}[/dim]",
            row.kind.value,
            view["ingestUrl"],
            f"{row.events_received}\n{last}",
        )
    _console().print(table)


@source_app.command("delete")
def source_delete(
    source_id: Annotated[str, typer.Argument(help="the source's _id")],
) -> None:
    """Delete a source: its URL stops taking events (what it brought in stays)."""
    settings = _settings()
    _existing_database(settings)
    from pushgate.store import Store

    async def main() -> None:
        store = await Store.open(settings)
        try:
            await store.sources.delete(source_id)
        finally:
            await store.close()

    _run(settings, main())
    sys.stderr.write(f"Deleted source {source_id}.\n")
