"""Backup and restore, and rotating the secret key, with real processes delivering meanwhile.

A webhook configuration with a signing secret proves that the secrets open: every request the
receiver sees must carry a valid Standard Webhooks signature made with that secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from conftest import SECRET_KEY, Database, Receiver, Recorded, flag_event, free_port
from test_scaling import SRC, Api, Launch, Pushgate, eventually, launch, ready  # noqa: F401

pytestmark = pytest.mark.slow
SIGNING_SECRET = "signing-secret-0123456789abcdef"
NEW_KEY = "n" * 40


def signed_by_the_secret(request: Recorded) -> bool:
    """Whether the request's webhook-signature was made with SIGNING_SECRET."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request.body
    expected = base64.b64encode(
        hmac.new(SIGNING_SECRET.encode(), signed, hashlib.sha256).digest()
    ).decode()
    return f"v1,{expected}" in headers["webhook-signature"].split()


def pushgate(*args: str, **variables: str | None) -> subprocess.CompletedProcess[str]:
    """`pushgate ARGS` with these PUSHGATE_* variables (None: unset), to its end."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")},
        "PYTHONPATH": str(SRC),
        "PUSHGATE_LOG_LEVEL": "warning",
    }
    for name, value in variables.items():
        if value is not None:
            env[f"PUSHGATE_{name.upper()}"] = value
    return subprocess.run(
        [sys.executable, "-m", "pushgate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_of(database: Database, secret_key: str) -> dict[str, str | None]:
    """`pushgate` keyword arguments for this database, with `secret_key`."""
    values: dict[str, str | None] = {k: str(v) for k, v in database.settings().items()}
    return {**values, "secret_key": secret_key}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def serve(
    launch: Launch,  # noqa: F811
    session: aiohttp.ClientSession,
    name: str,
    *args: str,
    **settings: str | None,
) -> tuple[Pushgate, Api]:
    port = free_port()
    node = await launch(name, "serve", "--port", str(port), *args, **settings)
    url = f"http://127.0.0.1:{port}"
    await ready(node, url, session)
    return node, Api(url, session)


async def signed_webhook(api: Api, receiver: Receiver, name: str = "signed") -> str:
    created = await api.call(
        "POST",
        "/api/v2/integrations/webhook",
        {"name": name, "on": True, "config": {"url": receiver.url, "secret": SIGNING_SECRET}},
    )
    configuration_id: str = created["_id"]
    return configuration_id


async def post(api: Api, *event_ids: str) -> None:
    await api.call("POST", "/api/v2/events", {"items": [flag_event(i) for i in event_ids]})


async def post_one_by_one(api: Api, prefix: str, count: int) -> None:
    """`count` events, a request each (something to deliver while a command runs)."""
    for i in range(count):
        await post(api, f"{prefix}-{i}")


def received(receiver: Receiver) -> set[str]:
    return {r.json()["_id"] for r in receiver.requests}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_backup_taken_while_serving_restores_into_a_new_data_directory(
    launch: Launch,  # noqa: F811
    receiver: Receiver,
    session: aiohttp.ClientSession,
    database: Database,
    tmp_path: Path,
) -> None:
    receiver.gate = asyncio.Event()  # the first process's requests are never answered
    first, api = await serve(launch, session, "first", secret_key=None, lease_seconds="2")
    configuration_id = await signed_webhook(api, receiver)
    await post(api, "e0", "e1", "e2")
    await receiver.wait_for(3)  # in flight: pending in the database

    backup_dir = tmp_path / "backup"
    posting = asyncio.create_task(post_one_by_one(api, "during", 20))
    backed_up = await asyncio.to_thread(
        pushgate, "backup", str(backup_dir), data_dir=str(database.data_dir)
    )
    await posting
    assert backed_up.returncode == 0, backed_up.stderr
    assert "secret.key" in backed_up.stderr
    assert f"PUSHGATE_DATA_DIR={backup_dir}" in backed_up.stderr
    assert sorted(p.name for p in backup_dir.iterdir()) == ["pushgate.db", "secret.key"]
    assert backup_dir.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in backup_dir.iterdir()} == {0o600}
    with sqlite3.connect(backup_dir / "pushgate.db") as copy:
        (in_backup,) = copy.execute("SELECT count(*) FROM events").fetchone()
        (deliveries,) = copy.execute("SELECT count(*) FROM deliveries").fetchone()
    assert in_backup >= 3
    assert deliveries == in_backup  # one configuration: each event with its delivery

    first.process.kill()
    await first.process.wait()
    receiver.requests.clear()
    receiver.gate.set()

    restored_dir = tmp_path / "restored"
    shutil.copytree(backup_dir, restored_dir)  # the documented restore: copy, then start
    second, api = await serve(
        launch, session, "second", secret_key=None, data_dir=str(restored_dir)
    )

    async def all_delivered() -> bool:
        return (await api.status(configuration_id))["successCount"] == in_backup

    await eventually(all_delivered, within=60)
    assert {"e0", "e1", "e2"} <= received(receiver)
    assert len(received(receiver)) == in_backup
    assert all(signed_by_the_secret(r) for r in receiver.requests)
    assert await second.terminate() == 0


@pytest.mark.parametrize("backend", ["postgresql"])
def test_backup_of_postgresql_points_to_pg_dump(database: Database) -> None:
    done = pushgate("backup", str(database.data_dir / "b"), **settings_of(database, SECRET_KEY))
    assert done.returncode == 2
    assert "pg_dump" in done.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_rotate_key_while_a_worker_process_delivers(
    launch: Launch,  # noqa: F811
    receiver: Receiver,
    session: aiohttp.ClientSession,
    database: Database,
) -> None:
    """Key files: a worker started before the rotation opens what is sealed after it."""
    node, api = await serve(launch, session, "api", "--no-worker", secret_key=None)
    worker = await launch("worker", "worker", secret_key=None)
    await worker.logged("worker.started")
    before = await signed_webhook(api, receiver, "before")
    await post(api, "b0", "b1")
    await receiver.wait_for(2)
    key_file = database.data_dir / "secret.key"
    old_key = key_file.read_text().strip()

    posting = asyncio.create_task(post_one_by_one(api, "during", 20))
    rotated = await asyncio.to_thread(pushgate, "rotate-key", data_dir=str(database.data_dir))
    await posting
    assert rotated.returncode == 0, rotated.stderr
    assert "1 configurations sealed again" in rotated.stderr
    assert "The rotation has ended" in rotated.stderr
    assert key_file.read_text().strip() != old_key
    assert not (database.data_dir / "secret.key.previous").exists()

    after = await signed_webhook(api, receiver, "after")  # sealed by the API under the new key
    await post(api, "a0", "a1")

    async def all_delivered() -> bool:
        first, second = await api.status(before), await api.status(after)
        return first["successCount"] == 24 and second["successCount"] == 2

    await eventually(all_delivered, within=60)
    assert all(signed_by_the_secret(r) for r in receiver.requests)
    assert not [e for e in worker.events() if e.get("event") == "configuration.unreadable"]
    with sqlite3.connect(database.data_dir / "pushgate.db") as db:
        sealed = [row[0] for row in db.execute("SELECT secrets FROM configurations")]
    assert len(sealed) == 2
    opened_by = {key: _opens(database, key, sealed) for key in (old_key, key_file.read_text())}
    assert opened_by == {old_key: False, key_file.read_text(): True}
    assert await worker.terminate() == 0
    assert await node.terminate() == 0


def _opens(database: Database, key: str, sealed: list[str]) -> bool:
    """Whether `key` alone opens every sealed value."""
    from pushgate.sealing import load_secret_box
    from pushgate.settings import Settings

    box = load_secret_box(Settings(data_dir=database.data_dir, secret_key=key.strip()))
    try:
        for value in sealed:
            box.open(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_rotate_key_from_the_environment_with_a_worker_running(
    launch: Launch,  # noqa: F811
    receiver: Receiver,
    session: aiohttp.ClientSession,
    database: Database,
) -> None:
    """PUSHGATE_SECRET_KEY: the documented procedure, new key and previous key everywhere."""
    node, api = await serve(launch, session, "api", "--no-worker")  # the old key only
    configuration_id = await signed_webhook(api, receiver)
    worker = await launch("worker", "worker", secret_key=NEW_KEY, previous_secret_key=SECRET_KEY)
    await worker.logged("worker.started")
    await post(api, "e0", "e1")
    await receiver.wait_for(2)

    settings = settings_of(database, NEW_KEY)
    refused = await asyncio.to_thread(pushgate, "rotate-key", **settings)
    assert refused.returncode == 2
    assert "PUSHGATE_PREVIOUS_SECRET_KEY" in refused.stderr

    posting = asyncio.create_task(post(api, *(f"during-{i}" for i in range(10))))
    rotated = await asyncio.to_thread(
        pushgate, "rotate-key", **settings, previous_secret_key=SECRET_KEY
    )
    await posting
    assert rotated.returncode == 0, rotated.stderr
    assert "1 configurations sealed again" in rotated.stderr
    assert "remove PUSHGATE_PREVIOUS_SECRET_KEY" in rotated.stderr
    assert await worker.terminate() == 0

    # The rotation has ended: a worker with the new key alone opens everything.
    alone = await launch("alone", "worker", secret_key=NEW_KEY)
    await post(api, "a0")

    async def all_delivered() -> bool:
        return (await api.status(configuration_id))["successCount"] == 13

    await eventually(all_delivered, within=60)
    assert all(signed_by_the_secret(r) for r in receiver.requests)
    assert not [e for e in alone.events() if e.get("event") == "configuration.unreadable"]
    assert await alone.terminate() == 0
    assert await node.terminate() == 0


def test_web_sessions_signed_under_the_old_key_hold_until_the_rotation_ends() -> None:
    from pushgate.web.session import Signer

    old, new = b"o" * 32, b"n" * 32
    cookie = Signer(old).sign({"sid": "s1"})
    assert Signer(new, old).unsign(cookie) == {"sid": "s1"}  # during the rotation
    assert Signer(new).unsign(cookie) is None  # after it
    assert Signer(new, old).sign({"sid": "s2"}) == Signer(new).sign({"sid": "s2"})
    admin = Signer(old).fingerprint("the admin token")
    assert admin in Signer(new, old).fingerprints("the admin token")
    assert admin not in Signer(new).fingerprints("the admin token")
