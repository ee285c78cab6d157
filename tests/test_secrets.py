"""A secret never appears in any response or log line, and is encrypted at rest."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import structlog

from conftest import Database, Receiver, Server, flag_event
from pushgate.logs import configure

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
