"""scripts/check-lock: the lock (constraints.txt) and pyproject.toml must agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "scripts" / "check-lock"


def check(pyproject: Path | None = None, constraints: Path | None = None) -> tuple[int, str]:
    given = [str(p) for p in (pyproject or ROOT / "pyproject.toml", constraints) if p]
    done = subprocess.run(
        [sys.executable, str(CHECK), *given], capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stderr


def test_the_lock_agrees_with_pyproject() -> None:
    assert check() == (0, "")


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    copy = tmp_path / "constraints.txt"
    copy.write_text((ROOT / "constraints.txt").read_text())
    return copy


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "pyproject.toml"
    copy.write_text((ROOT / "pyproject.toml").read_text())
    return copy


def test_a_dependency_added_without_locking_fails(project: Path, lock: Path) -> None:
    project.write_text(project.read_text().replace('"rich>=13",', '"rich>=13",\n    "tomli-w>=1",'))
    code, said = check(project, lock)
    assert code == 1
    assert "tomli-w: in pyproject.toml, not pinned" in said


def test_a_lower_bound_above_the_pin_fails(project: Path, lock: Path) -> None:
    project.write_text(project.read_text().replace('"structlog>=24.1"', '"structlog>=99"'))
    code, said = check(project, lock)
    assert code == 1
    assert "structlog: pinned" in said
    assert ">=99" in said


def test_a_pin_nothing_needs_fails(project: Path, lock: Path) -> None:
    lock.write_text(lock.read_text() + "leftover-package==1.0\n")
    code, said = check(project, lock)
    assert code == 1
    assert "leftover-package: pinned, but nothing in pyproject.toml needs it" in said


def test_a_dependency_of_a_dependency_left_out_of_the_lock_fails(project: Path, lock: Path) -> None:
    lock.write_text("".join(line for line in lock.read_text().splitlines(keepends=True)
                            if not line.lower().startswith("markupsafe==")))  # fmt: skip
    code, said = check(project, lock)
    assert code == 1
    assert "markupsafe: installed as a dependency, not pinned" in said
