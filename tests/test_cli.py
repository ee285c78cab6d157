"""The `pushgate` command, run as a real process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from conftest import Receiver, flag_event
from pushgate import sources
from pushgate.clock import system_clock
from pushgate.configurations import create
from pushgate.ingest import ingest
from pushgate.runtime import running
from pushgate.sealing import load_secret_box
from pushgate.settings import Settings
from pushgate.store import Store

PUSHGATE = [sys.executable, "-m", "pushgate"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PUSHGATE_DATA_DIR": str(tmp_path / "data"),
        "PUSHGATE_LOG_LEVEL": "warning",
    }


def test_token_create_prints_only_the_token(env: dict[str, str]) -> None:
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


def test_worker_stops_cleanly_on_sigterm(env: dict[str, str]) -> None:
    subprocess.run([*PUSHGATE, "migrate"], env=env, check=True, capture_output=True, timeout=60)
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
    checked = subprocess.run(
        [*PUSHGATE, "validate", "webhook", configuration_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 1  # localhost resolves to loopback, refused by default
    assert "PUSHGATE_OUTBOUND_ALLOW" in checked.stdout


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


async def test_replay_asks_queues_and_watches_the_failed_deliveries_go_out(
    env: dict[str, str], receiver: Receiver
) -> None:
    settings = Settings(
        data_dir=Path(env["PUSHGATE_DATA_DIR"]), outbound_allow="127.0.0.0/8", retry_schedule=""
    )
    async with running(settings, with_worker=False) as rt:
        body = {"name": "hook", "on": True, "config": {"url": receiver.url}}
        row = await create(rt.services, "webhook", body, now=rt.clock())
        await ingest(rt.store, {"items": [flag_event(f"e{i}") for i in range(3)]}, now=rt.clock())
        receiver.default = (500, "down", {})
        await rt.new_worker().run_until_idle()  # no retries: all three fail for good
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
def test_replay_explains_a_time_it_cannot_read(env: dict[str, str], value: str) -> None:
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
        *PUSHGATE, "validate", "webhook", row.id,
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


async def test_source_create_list_and_delete(env: dict[str, str]) -> None:
    env = {**env, "PUSHGATE_PUBLIC_URL": "https://pushgate.example.com"}
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
    env: dict[str, str],
) -> None:
    given = "whsec_" + base64.b64encode(b"k" * 32).decode()
    made = source(env, "create", "--name", "svix", "--kind", "standard-webhooks", "--secret", "-",
                  stdin=given + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert printed(made.stdout)["secret"] == given
    assert printed(made.stdout)["url"].startswith("/ingest/")  # no PUSHGATE_PUBLIC_URL
    bad = source(env, "create", "--name", "x", "--kind", "standard-webhooks", "--secret", "nope!")
    assert bad.returncode == 2
    assert "secret: must be whsec_ followed by base64" in bad.stderr
