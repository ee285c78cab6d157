"""The `pushgate` command, run as a real process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from conftest import Receiver, flag_event
from pushgate import sources
from pushgate.clock import system_clock
from pushgate.configurations import create
from pushgate.ingest import ingest
from pushgate.runtime import YOUNG_GENERATION_THRESHOLD, Runtime, running
from pushgate.sealing import load_secret_box
from pushgate.settings import Settings
from pushgate.store import ConfigurationRow, Store

PUSHGATE = [sys.executable, "-m", "pushgate"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PUSHGATE_DATA_DIR": str(tmp_path / "data"),
        "PUSHGATE_LOG_LEVEL": "warning",
    }


def pushgate(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`pushgate ARGS` to its end: exit code, stdout, stderr."""
    return subprocess.run(
        [*PUSHGATE, *args], env=env, capture_output=True, text=True, timeout=60, cwd=cwd
    )


@pytest.fixture
def migrated(env: dict[str, str]) -> dict[str, str]:
    """`env`, with its SQLite database created."""
    done = pushgate(env, "migrate", "--create")
    assert done.returncode == 0, done.stderr
    return env


def test_token_create_prints_only_the_token(migrated: dict[str, str]) -> None:
    env = migrated
    done = subprocess.run(
        [*PUSHGATE, "token", "create", "--name", "ci", "--role", "reader"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("pgt-")
    assert len(lines[0]) > 40


def test_invalid_setting_stops_with_the_variable_named(env: dict[str, str]) -> None:
    done = subprocess.run(
        [*PUSHGATE, "migrate"],
        env={**env, "PUSHGATE_RETRY_SCHEDULE": "5,soon"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "PUSHGATE_RETRY_SCHEDULE" in done.stderr


def test_worker_stops_cleanly_on_sigterm(migrated: dict[str, str]) -> None:
    env = migrated
    worker = subprocess.Popen(
        [*PUSHGATE, "worker"],
        env={**env, "PUSHGATE_LOG_LEVEL": "info"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    for line in worker.stderr:
        if "worker.started" in line:
            break
    worker.send_signal(signal.SIGTERM)
    _, rest = worker.communicate(timeout=30)
    assert worker.returncode == 0
    assert "worker.stopped" in rest


def test_status_and_validate_report_a_configuration(env: dict[str, str]) -> None:
    import asyncio

    from pushgate.clock import system_clock
    from pushgate.configurations import create
    from pushgate.runtime import running
    from pushgate.settings import Settings

    async def make() -> str:
        settings = Settings(data_dir=Path(env["PUSHGATE_DATA_DIR"]))
        async with running(settings, with_worker=False) as rt:
            body = {"name": "nowhere", "on": True, "config": {"url": "http://localhost:9/hook"}}
            row = await create(rt.services, "webhook", body, now=system_clock())
        return row.id

    configuration_id = asyncio.run(make())
    shown = subprocess.run(
        [*PUSHGATE, "status"], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert configuration_id in shown.stdout
    assert "never" in shown.stdout
    checked = pushgate(env, "validate", "webhook", configuration_id)
    assert checked.returncode == 1  # localhost resolves to loopback, refused by default
    assert checked.stdout.startswith("failed: no answer")
    assert "PUSHGATE_OUTBOUND_ALLOW" in checked.stdout
    as_json = pushgate(env, "validate", "webhook", configuration_id, "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert "PUSHGATE_OUTBOUND_ALLOW" in report["hint"]


def test_postgresql_without_a_shared_secret_key_is_refused(env: dict[str, str]) -> None:
    done = subprocess.run(
        [*PUSHGATE, "migrate"],
        env={**env, "PUSHGATE_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "PUSHGATE_SECRET_KEY" in done.stderr


@contextlib.asynccontextmanager
async def three_failed_deliveries(
    env: dict[str, str], receiver: Receiver, answer: tuple[int, str, dict[str, str]]
) -> AsyncIterator[tuple[Runtime, ConfigurationRow]]:
    """A webhook configuration to `receiver` whose three deliveries failed for good with
    `answer` (no retries), and the runtime that delivered them."""
    settings = Settings(
        data_dir=Path(env["PUSHGATE_DATA_DIR"]), outbound_allow="127.0.0.0/8", retry_schedule=""
    )
    async with running(settings, with_worker=False) as rt:
        body = {"name": "hook", "on": True, "config": {"url": receiver.url}}
        row = await create(rt.services, "webhook", body, now=rt.clock())
        await ingest(rt.store, {"items": [flag_event(f"e{i}") for i in range(3)]}, now=rt.clock())
        receiver.default = answer
        await rt.new_worker().run_until_idle()  # no retries: all three fail for good
        yield rt, row


async def test_replay_asks_queues_and_watches_the_failed_deliveries_go_out(
    env: dict[str, str], receiver: Receiver
) -> None:
    async with three_failed_deliveries(env, receiver, (500, "down", {})) as (rt, row):
        receiver.default = (200, "ok", {})
        receiver.requests.clear()

        refused = await asyncio.create_subprocess_exec(
            *PUSHGATE, "replay", "webhook", row.id, env=env, stdin=PIPE, stdout=PIPE, stderr=PIPE
        )
        _, said = await refused.communicate(b"n\n")
        assert refused.returncode == 1
        assert "3 failed deliveries of “hook” match" in said.decode()
        assert "Nothing was queued" in said.decode()

        stop = asyncio.Event()
        worker = asyncio.create_task(rt.new_worker().run(stop))
        try:
            done = await asyncio.create_subprocess_exec(
                *PUSHGATE, "replay", "webhook", row.id, "--since", "2023-11-14", "--yes",
                env=env, stdout=PIPE, stderr=PIPE,
            )  # fmt: skip
            _, said = await asyncio.wait_for(done.communicate(), 60)
        finally:
            stop.set()
            await worker
    assert done.returncode == 0, said.decode()
    assert "3 delivered" in said.decode()
    assert sorted(r.json()["_id"] for r in receiver.requests) == ["e0", "e1", "e2"]


@pytest.mark.parametrize("value", ["soon", "2x", "12:00 tomorrow"])
def test_replay_explains_a_time_it_cannot_read(migrated: dict[str, str], value: str) -> None:
    env = migrated
    done = subprocess.run(
        [*PUSHGATE, "replay", "webhook", "0" * 24, "--since", value, "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no webhook configuration" in done.stderr or "--since" in done.stderr


# --- pushgate validate on success, pushgate source -------------------------------------------


async def test_validate_prints_the_status_code_and_body_on_success(
    env: dict[str, str], receiver: Receiver
) -> None:
    settings = Settings(data_dir=Path(env["PUSHGATE_DATA_DIR"]), outbound_allow="127.0.0.0/8")
    async with running(settings, with_worker=False) as rt:
        body = {"name": "hook", "config": {"url": receiver.url}}
        row = await create(rt.services, "webhook", body, now=rt.clock())
    receiver.default = (202, "queued", {})
    done = await asyncio.create_subprocess_exec(
        *PUSHGATE, "validate", "webhook", row.id, "--json",
        env={**env, "PUSHGATE_OUTBOUND_ALLOW": "127.0.0.0/8"}, stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    said, _ = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode == 0
    report = json.loads(said)
    assert (report["ok"], report["statusCode"], report["responseBody"]) == (True, 202, "queued")


def source(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PUSHGATE, "source", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def printed(stdout: str) -> dict[str, str]:
    """`label   value` lines as a mapping."""
    return dict(line.split(maxsplit=1) for line in stdout.replace("ingest URL", "url").splitlines())


async def test_source_create_list_and_delete(migrated: dict[str, str]) -> None:
    env = {**migrated, "PUSHGATE_PUBLIC_URL": "https://pushgate.example.com"}
    made = source(env, "create", "--name", "LaunchDarkly prod", "--kind", "launchdarkly-webhook")
    assert made.returncode == 0, made.stderr
    shown = printed(made.stdout)
    assert shown["url"] == f"https://pushgate.example.com/ingest/{shown['id']}"
    assert len(shown["secret"]) == 64
    assert "shown this once" in made.stderr

    # The printed secret is the one the source verifies with.
    settings = Settings(data_dir=Path(env["PUSHGATE_DATA_DIR"]))
    store = await Store.open(settings)
    try:
        body = b'{"_id": "x"}'
        signature = hmac.new(shown["secret"].encode(), body, hashlib.sha256).hexdigest()
        row = await sources.authenticate(
            store, load_secret_box(settings), shown["id"], {"X-LD-Signature": signature}, body,
            now_ms=system_clock(),
        )  # fmt: skip
    finally:
        await store.close()
    assert row.name == "LaunchDarkly prod"

    listed = source({**env, "COLUMNS": "200"}, "list")
    assert listed.returncode == 0
    assert shown["id"] in listed.stdout
    assert "LaunchDarkly prod" in listed.stdout
    assert shown["secret"] not in listed.stdout

    assert source(env, "delete", shown["id"]).returncode == 0
    assert shown["id"] not in source(env, "list").stdout
    gone = source(env, "delete", shown["id"])
    assert gone.returncode == 2
    assert "no source with id" in gone.stderr


def test_source_create_reads_a_given_secret_from_stdin_and_refuses_a_bad_one(
    migrated: dict[str, str],
) -> None:
    env = migrated
    given = "whsec_" + base64.b64encode(b"k" * 32).decode()
    made = source(env, "create", "--name", "svix", "--kind", "standard-webhooks", "--secret", "-",
                  stdin=given + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert printed(made.stdout)["secret"] == given
    assert printed(made.stdout)["url"].startswith("/ingest/")  # no PUSHGATE_PUBLIC_URL
    bad = source(env, "create", "--name", "x", "--kind", "standard-webhooks", "--secret", "nope!")
    assert bad.returncode == 2
    assert "secret: must be whsec_ followed by base64" in bad.stderr


# --- mistakes: one or two lines, the variable named, exit 2, no traceback ---------------------

SECRET_VALUE = "not-long-enough-secret"
SETTINGS_MISTAKES = [
    ({"PUSHGATE_RETRY_SCHEDULE": "abc"}, "PUSHGATE_RETRY_SCHEDULE"),
    ({"PUSHGATE_PORT": "abc"}, "PUSHGATE_PORT"),
    ({"PUSHGATE_PORT": "70000"}, "PUSHGATE_PORT"),
    ({"PUSHGATE_OUTBOUND_ALLOW": "10.0.0.0/33"}, "PUSHGATE_OUTBOUND_ALLOW"),
    ({"PUSHGATE_TRUSTED_PROXIES": "proxy.local"}, "PUSHGATE_TRUSTED_PROXIES"),
    ({"PUSHGATE_ENDPOINT_OVERRIDES": "{datadog: x"}, "PUSHGATE_ENDPOINT_OVERRIDES"),
    ({"PUSHGATE_ENDPOINT_OVERRIDES": '{"datadog": "dd-proxy"}'}, "PUSHGATE_ENDPOINT_OVERRIDES"),
    ({"PUSHGATE_SECRET_KEY": SECRET_VALUE}, "PUSHGATE_SECRET_KEY"),
    ({"PUSHGATE_PREVIOUS_SECRET_KEY": SECRET_VALUE}, "PUSHGATE_PREVIOUS_SECRET_KEY"),
    ({"PUSHGATE_ADMIN_TOKEN": SECRET_VALUE}, "PUSHGATE_ADMIN_TOKEN"),
    ({"PUSHGATE_DATABASE_URL": "postgresql://u@127.0.0.1/db"}, "PUSHGATE_SECRET_KEY"),
    ({"PUSHGATE_DATABASE_URL": "mysql://u@127.0.0.1/db"}, "PUSHGATE_DATABASE_URL"),
    ({"PUSHGATE_DATABASE_URL": "notaurl"}, "PUSHGATE_DATABASE_URL"),
    ({"PUSHGATE_DATABASE_SCHEMA": "tenant_a"}, "PUSHGATE_DATABASE_SCHEMA"),  # on SQLite
    ({"PUSHGATE_DATABASE_SCHEMA": "Tenant-A"}, "PUSHGATE_DATABASE_SCHEMA"),
    ({"PUSHGATE_EVENT_SIZE_LIMIT": "20000000"}, "PUSHGATE_EVENT_SIZE_LIMIT"),
    ({"PUSHGATE_MANIFEST_DIRS": "/nonexistent/manifests"}, "PUSHGATE_MANIFEST_DIRS"),
    ({"PUSHGATE_LOG_LEVEL": "loud"}, "PUSHGATE_LOG_LEVEL"),
    ({"PUSHGATE_LOG_FORMAT": "xml"}, "PUSHGATE_LOG_FORMAT"),
    ({"PUSHGATE_ACCESS_LOG": "sometimes"}, "PUSHGATE_ACCESS_LOG"),
    ({"PUSHGATE_WORKER_METRICS_PORT": "-1"}, "PUSHGATE_WORKER_METRICS_PORT"),
]  # fmt: skip


def assert_explained(done: subprocess.CompletedProcess[str], *named: str) -> list[str]:
    """Exit 2, at most two lines (besides the `database:` line) naming `named`, no traceback."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if not line.startswith("database: ")]
    assert 1 <= len(lines) <= 2, done.stderr
    assert "Traceback" not in done.stderr
    for name in named:
        assert name in lines[0], done.stderr
    return lines


@pytest.mark.parametrize(("variables", "named"), SETTINGS_MISTAKES)
def test_a_settings_mistake_is_one_line_naming_the_variable(
    env: dict[str, str], variables: dict[str, str], named: str
) -> None:
    done = pushgate({**env, **variables}, "migrate")
    lines = assert_explained(done, named)
    assert lines[0].startswith(named)
    assert SECRET_VALUE not in done.stderr  # a secret's value is never repeated


def test_a_mistake_shows_its_traceback_with_log_level_debug(env: dict[str, str]) -> None:
    done = pushgate({**env, "PUSHGATE_PORT": "abc", "PUSHGATE_LOG_LEVEL": "debug"}, "migrate")
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("PUSHGATE_PORT: ")


def test_an_option_is_named_with_its_variable(env: dict[str, str]) -> None:
    done = pushgate(env, "serve", "--forwarded-allow-ips", "my-proxy")
    assert_explained(done, "--forwarded-allow-ips / PUSHGATE_TRUSTED_PROXIES")


def _on_postgres(**variables: str) -> dict[str, str]:
    from conftest import POSTGRES_URL, SECRET_KEY, unreachable

    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError as error:
        unreachable(f"PostgreSQL unreachable: {error}")
    return {"PUSHGATE_DATABASE_URL": POSTGRES_URL, "PUSHGATE_SECRET_KEY": SECRET_KEY, **variables}


def _nothing_listening() -> int:
    from conftest import free_port

    return free_port()


def _postgres_at(url: str) -> dict[str, str]:
    return {**_on_postgres(), "PUSHGATE_DATABASE_URL": url}


# What is wrong → (the variables that say it, the variable named, words of the explanation).
DATABASE_MISTAKES: dict[str, tuple[Callable[[], dict[str, str]], str, str]] = {
    "refused": (
        lambda: _postgres_at(f"postgresql://postgres@127.0.0.1:{_nothing_listening()}/test"),
        "PUSHGATE_DATABASE_URL",
        "connection refused",
    ),
    "no such database": (
        lambda: _postgres_at("postgresql://postgres@127.0.0.1:5432/no_such_db"),
        "PUSHGATE_DATABASE_URL",
        "createdb no_such_db",
    ),
    "no such schema": (
        lambda: _on_postgres(PUSHGATE_DATABASE_SCHEMA="no_such_schema"),
        "PUSHGATE_DATABASE_SCHEMA",
        "CREATE SCHEMA no_such_schema",
    ),
    "no such user": (
        lambda: _postgres_at("postgresql://nobody_here:pw-0123456789@127.0.0.1:5432/test"),
        "PUSHGATE_DATABASE_URL",
        "'nobody_here'",
    ),
    "unknown host": (
        lambda: _postgres_at("postgresql://postgres@db.invalid:5432/test"),
        "PUSHGATE_DATABASE_URL",
        "'db.invalid' is unknown",
    ),
}


@pytest.mark.parametrize("mistake", sorted(DATABASE_MISTAKES))
def test_a_database_mistake_is_one_line_naming_the_url_part(
    env: dict[str, str], mistake: str
) -> None:
    variables, named, said = DATABASE_MISTAKES[mistake]
    done = pushgate({**env, **variables()}, "migrate")
    assert_explained(done, named, said)
    assert "pw-0123456789" not in done.stderr  # never the password


def test_an_sqlite_path_that_cannot_be_created_names_the_data_dir(
    env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = pushgate({**env, "PUSHGATE_DATA_DIR": str(blocker / "data")}, "migrate", "--create")
    assert_explained(done, "PUSHGATE_DATA_DIR", str(blocker))


def test_a_file_that_is_not_a_database_is_named_and_left_alone(
    env: dict[str, str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    notes.chmod(0o644)
    done = pushgate({**env, "PUSHGATE_DATABASE_URL": f"sqlite:///{notes}"}, "migrate")
    assert_explained(done, "PUSHGATE_DATABASE_URL", "is not an SQLite database")
    assert notes.read_text() == "my notes\n"
    assert notes.stat().st_mode & 0o777 == 0o644


def test_migrate_elsewhere_refuses_to_start_an_empty_database(
    migrated: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    relative = {**migrated, "PUSHGATE_DATA_DIR": "data"}
    for command in (["migrate"], ["status"], ["token", "list"], ["worker"]):
        done = pushgate(relative, *command, cwd=elsewhere)
        lines = assert_explained(done, "no pushgate database at")
        assert "relative to the current directory" in lines[0]
        assert "migrate --create" in done.stderr
    assert list(elsewhere.iterdir()) == []  # nothing created there


def test_migrate_and_status_say_which_database_never_its_password(env: dict[str, str]) -> None:
    import pushgate as pushgate_package
    from conftest import SECRET_KEY

    created = pushgate(env, "migrate", "--create")
    database = f"database: SQLite {Path(env['PUSHGATE_DATA_DIR']).resolve()}/pushgate.db"
    assert created.stderr.splitlines()[0] == database
    versions = Path(pushgate_package.__file__).parent / "store" / "migrations" / "versions"
    head = max(path.name for path in versions.glob("[0-9]*.py"))[:4]
    assert f"up to date (schema revision {head})" in created.stderr
    assert pushgate(env, "status").stderr.splitlines()[0] == database

    postgres = _on_postgres()
    url = postgres["PUSHGATE_DATABASE_URL"].replace("postgres@", "postgres:pw-0123456789@")
    shown = pushgate(
        {**env, **postgres, "PUSHGATE_DATABASE_URL": url, "PUSHGATE_SECRET_KEY": SECRET_KEY},
        "migrate",
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.splitlines()[0] == "database: PostgreSQL postgres@127.0.0.1:5432/test"
    assert "pw-0123456789" not in shown.stderr


def test_version_and_a_help_that_imports_no_server(env: dict[str, str]) -> None:
    from pushgate import __version__

    assert pushgate(env, "--version").stdout == f"pushgate {__version__}\n"
    helped = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pushgate", "--help"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "rotate-key" in helped.stdout
    imported = {line.split("|")[-1].strip() for line in helped.stderr.splitlines()}
    assert not imported & {"fastapi", "sqlalchemy", "uvicorn", "pushgate.app", "pushgate.store"}


# --- serve --port 0, one log format -----------------------------------------------------------


def _start(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([*PUSHGATE, *args], env=env, stdout=out, stderr=out)


def _logged(process: subprocess.Popen[bytes], log: Path, event: str) -> dict[str, object]:
    """The first JSON line named `event` in `log`, waiting up to a minute."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("event") == event:
                return dict(entry)
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"no {event} in {log.read_text()}")


def test_serve_port_0_listens_on_a_free_port_and_every_line_is_json(
    migrated: dict[str, str], tmp_path: Path
) -> None:
    import urllib.request

    env = {**migrated, "PUSHGATE_LOG_LEVEL": "info", "PUSHGATE_ACCESS_LOG": "true"}
    log = tmp_path / "serve.log"
    server = _start(env, "serve", "--port", "0", log=log)
    try:
        listening = _logged(server, log, "server.listening")
        port = listening["port"]
        assert isinstance(port, int)
        assert port not in (0, 8080)
        _logged(server, log, "Application startup complete.")  # uvicorn's own, as JSON
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(url + "/healthz?token=query-secret", timeout=10) as answer:  # noqa: S310
            assert answer.status == 200
        request = _logged(server, log, "http.request")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode == 0
    assert request["route"] == "/healthz"
    assert request["path"] == "/healthz"
    assert request["status"] == 200
    assert isinstance(request["duration_ms"], float)
    lines = log.read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)  # uvicorn's too
    assert {json.loads(line).get("logger") for line in lines} >= {"uvicorn.error"}
    assert "query-secret" not in log.read_text()
    using = next(json.loads(line) for line in lines if "database.using" in line)
    assert using["database"].startswith("SQLite ")


def test_a_busy_port_is_explained(migrated: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = pushgate(migrated, "serve", "--port", str(port))
    assert_explained(done, "--port", f"127.0.0.1:{port}")


# --- tokens, errors, status --json --------------------------------------------------------------


def test_token_list_and_revoke(migrated: dict[str, str]) -> None:
    env = migrated
    value = pushgate(env, "token", "create", "--name", "ci", "--role", "reader").stdout.strip()
    pushgate(env, "token", "create", "--name", "deploy bot", "--role", "admin")
    listed = json.loads(pushgate(env, "token", "list", "--json").stdout)["items"]
    assert [(t["name"], t["role"]) for t in listed] == [("ci", "reader"), ("deploy bot", "admin")]
    assert value not in json.dumps(listed)
    table = pushgate(env, "token", "list").stdout
    assert "deploy bot" in table
    assert listed[0]["_id"] in table

    revoked = pushgate(env, "token", "revoke", listed[0]["_id"])
    assert revoked.returncode == 0, revoked.stderr
    left = json.loads(pushgate(env, "token", "list", "--json").stdout)["items"]
    assert [t["name"] for t in left] == ["deploy bot"]
    again = pushgate(env, "token", "revoke", listed[0]["_id"])
    assert_explained(again, "no token with id")


async def test_errors_shows_the_error_log_newest_first(
    env: dict[str, str], receiver: Receiver
) -> None:
    failing = three_failed_deliveries(env, receiver, (503, "down for maintenance", {}))
    async with failing as (_, row):
        pass

    shown = await asyncio.to_thread(
        pushgate, env, "errors", "webhook", row.id, "--limit", "2", "--json"
    )
    assert shown.returncode == 0, shown.stderr
    answer = json.loads(shown.stdout)
    assert answer["totalCount"] == 3
    assert [e["statusCode"] for e in answer["items"]] == [503, 503]
    assert answer["items"][0]["id"] > answer["items"][1]["id"]
    table = await asyncio.to_thread(pushgate, env, "errors", "webhook", row.id)
    assert table.stdout.count("HTTP 503") == 3
    assert "down for maintenance" in table.stdout
    missing = await asyncio.to_thread(pushgate, env, "errors", "webhook", "0" * 24)
    assert_explained(missing, "no webhook configuration")
    unknown = await asyncio.to_thread(pushgate, env, "errors", "nosuch", row.id)
    assert unknown.returncode == 2


def test_status_json_and_80_columns(env: dict[str, str]) -> None:
    async def make() -> str:
        settings = Settings(data_dir=Path(env["PUSHGATE_DATA_DIR"]))
        async with running(settings, with_worker=False) as rt:
            body = {
                "name": "A configuration with a long name",
                "on": True,
                "config": {"url": "https://example.com/hook"},
            }
            row = await create(rt.services, "webhook", body, now=rt.clock())
        return row.id

    configuration_id = asyncio.run(make())
    answer = json.loads(pushgate(env, "status", "--json").stdout)
    (item,) = answer["items"]
    assert (item["_id"], item["kind"], item["_health"]["state"]) == (
        configuration_id,
        "webhook",
        "healthy",
    )
    assert item["config"]["url"] == "https://example.com/********"
    table = pushgate({**env, "COLUMNS": "80"}, "status").stdout
    assert max(len(line) for line in table.splitlines()) <= 80
    header = next(line for line in table.splitlines() if "configuration" in line)
    for title in ("configuration", "health", "delivered", "errors"):
        assert title in header


def test_a_database_migrated_by_a_newer_pushgate_is_explained(migrated: dict[str, str]) -> None:
    import sqlite3

    database = Path(migrated["PUSHGATE_DATA_DIR"]) / "pushgate.db"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    done = pushgate(migrated, "status")
    assert_explained(done, "migrated by a newer pushgate", "'9999'")


FREEZE_COUNTS = """
import asyncio, gc, sys
from pushgate.app import create_app
from pushgate.runtime import running
from pushgate.settings import Settings

settings = Settings(data_dir=sys.argv[1], secret_key="s" * 40)

async def runtime(own_process):
    async with running(settings, with_worker=True, own_process=own_process):
        return gc.get_freeze_count(), gc.get_threshold()[0]

async def app(own_process):
    served = create_app(settings, own_process=own_process)
    async with served.router.lifespan_context(served):
        return gc.get_freeze_count(), gc.get_threshold()[0]

# (log lines share standard output: the counts are the lines of digits alone)
print(*asyncio.run(runtime(False)), *asyncio.run(app(False)))
print(*asyncio.run(runtime(True)))
gc.unfreeze()
gc.set_threshold(700)
print(*asyncio.run(app(True)))
"""


def test_only_the_cli_processes_tune_the_garbage_collector(tmp_path: Path) -> None:
    """`serve` and `worker` leave start-up's objects out of the collector's full passes (they
    stalled the loop for 60-120 ms) and collect the youngest generation less often; a runtime
    or app opened by anything else (tests, the benchmarks) changes nothing, for frozen objects
    are never freed."""
    done = subprocess.run(
        [sys.executable, "-c", FREEZE_COUNTS, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    counts = [line.split() for line in done.stdout.splitlines() if line.replace(" ", "").isdigit()]
    assert counts[0] == ["0", "700", "0", "700"]
    for frozen, young in (counts[1], counts[2]):
        assert int(frozen) > 10_000  # the modules, the models, the runtime
        assert int(young) == YOUNG_GENERATION_THRESHOLD
