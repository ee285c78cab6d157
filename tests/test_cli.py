"""The `pushgate` command, run as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from conftest import Receiver, flag_event
from pushgate.configurations import create
from pushgate.ingest import ingest
from pushgate.runtime import running
from pushgate.settings import Settings

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
