"""The `pushgate` command, run as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

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
