"""A secret never appears in any response or log line, and is encrypted at rest."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from conftest import Database, Receiver, Server, flag_event
from pushgate.configurations import open_config
from pushgate.logs import configure
from pushgate.settings import Settings

SECRET = "dd-api-key-very-secret-0123456789"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure("debug", json_lines=True, stream=buffer)
    yield buffer
    structlog.reset_defaults()


async def test_secret_never_appears_in_responses_logs_or_the_database(
    server: Server, receiver: Receiver, log_lines: io.StringIO, database: Database
) -> None:
    # A receiver that echoes the request's headers in its error body, as some do.
    receiver.responder = lambda sent: (403, f"rejected key {sent.headers['DD-API-KEY']}", {})
    server.runtime.engine.endpoints.overrides["datadog"] = receiver.url  # type: ignore[index]
    answers = []
    status, created = await server.call(
        "POST",
        "/api/v2/integrations/datadog",
        {"name": "dd", "on": True, "config": {"apiKey": SECRET}},
    )
    answers.append(created)
    assert status == 201
    path = f"/api/v2/integrations/datadog/{created['_id']}"
    answers.append((await server.call("POST", "/api/v2/events", flag_event("e1")))[1])
    await server.deliver()
    for method, url in [
        ("GET", path),
        ("GET", "/api/v2/integrations/datadog"),
        ("GET", path + "/errors"),
        ("POST", path + "/validate"),
    ]:
        answers.append((await server.call(method, url))[1])

    error = answers[2]["_status"]["errors"][0]
    assert error["statusCode"] == 403
    assert error["responseBody"] == "rejected key ********"
    assert SECRET not in repr(answers)
    logged = log_lines.getvalue()
    assert "delivery.failed" in logged
    assert SECRET not in logged
    stored = await database.stored_bytes()
    assert created["_id"].encode() in stored  # the dump really holds the configuration
    assert SECRET.encode() not in stored


def test_key_file_is_created_private_and_reused(tmp_path: object) -> None:
    from pathlib import Path

    from pushgate.sealing import KEY_FILE_NAME, load_secret_box
    from pushgate.settings import Settings

    settings = Settings(data_dir=Path(str(tmp_path)) / "data")
    sealed = load_secret_box(settings).seal({"apiKey": SECRET})
    key_file = settings.data_dir / KEY_FILE_NAME
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_secret_box(settings).open(sealed) == {"apiKey": SECRET}  # same key next start
    other = Settings(data_dir=settings.data_dir, secret_key="x" * 40)
    with pytest.raises(ValueError, match="PUSHGATE_SECRET_KEY"):
        load_secret_box(other).open(sealed)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_database_files_and_the_data_directory_are_private(server: Server) -> None:
    await server.call("POST", "/api/v2/events", flag_event("e1"))  # writes: WAL and shm exist
    data_dir = server.runtime.settings.data_dir
    files = {path.name: path.stat().st_mode & 0o777 for path in data_dir.iterdir()}
    assert {"pushgate.db", "pushgate.db-wal", "pushgate.db-shm"} <= set(files)
    assert set(files.values()) == {0o600}, files
    assert data_dir.stat().st_mode & 0o777 == 0o700


def test_a_database_file_an_older_version_left_readable_is_narrowed(tmp_path: Path) -> None:
    from pushgate.datadir import private_sqlite

    database = tmp_path / "pushgate.db"
    for name in ("pushgate.db", "pushgate.db-wal"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    private_sqlite(database)
    assert database.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "pushgate.db-wal").stat().st_mode & 0o777 == 0o600


async def test_database_errors_do_not_carry_their_parameters(settings: Settings) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from pushgate.store import Store
    from pushgate.store.tables import tokens

    store = await Store.open(settings)
    row = {"id": "1" * 24, "name": "n", "role": "admin", "created_at": 0, "token_hash": SECRET}
    try:
        async with store.engine.begin() as conn:
            await conn.execute(insert(tokens).values(row))
        with pytest.raises(IntegrityError) as failed:
            async with store.engine.begin() as conn:
                await conn.execute(insert(tokens).values(row))
    finally:
        await store.close()
    assert "INSERT INTO tokens" in str(failed.value)  # the statement kind is there
    assert SECRET not in str(failed.value)


TEAMS_URL = "https://prod-00.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=TeamsSig0123456789"


async def test_a_teams_webhook_url_is_masked_but_its_host_and_sealed_at_rest(
    server: Server, database: Database
) -> None:
    reader_status, reader = await server.call(
        "POST", "/api/v2/tokens", {"name": "r", "role": "reader"}
    )
    assert reader_status == 201
    status, created = await server.call(
        "POST", "/api/v2/integrations/msteams", {"name": "t", "config": {"url": TEAMS_URL}}
    )
    assert status == 201
    assert created["config"] == {"url": "https://prod-00.westus.logic.azure.com:443/********"}
    path = f"/api/v2/integrations/msteams/{created['_id']}"
    _, shown = await server.call("GET", path, token=reader["token"])
    assert "TeamsSig" not in repr(shown)
    # Changing something else keeps the saved URL (test_hostile_input: a masked URL with
    # another host is refused).
    status, _ = await server.call(
        "PATCH", path, [{"op": "replace", "path": "/name", "value": "renamed"}]
    )
    assert status == 200
    stored = await database.stored_bytes()
    assert created["_id"].encode() in stored
    assert b"TeamsSig" not in stored
    assert b"logic.azure.com" not in stored  # the whole URL is sealed, host included


async def test_a_url_an_older_version_stored_in_the_clear_is_sealed_at_start(
    settings: Settings, database: Database
) -> None:
    from pushgate.runtime import running

    async with running(settings, with_worker=False) as first:
        row = await first.store.configurations.create(
            integration_key="msteams",
            name="old",
            on=True,
            tags=[],
            config={"url": TEAMS_URL},  # as 0.1 stored it
            secrets=None,
            statements=[],
            now=0,
        )
    assert b"TeamsSig" in await database.stored_bytes()
    async with running(settings, with_worker=False) as restarted:
        resealed = await restarted.store.configurations.get("msteams", row.id)
        config = open_config(restarted.services, resealed)
    assert config.url.get_secret_value() == TEAMS_URL  # type: ignore[attr-defined]
    assert resealed.config == {}
    assert b"TeamsSig" not in await database.stored_bytes()
