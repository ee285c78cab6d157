"""The reference docs keep up with the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushgate.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`PUSHGATE_{name.upper()}`" in (ROOT / "docs" / "settings.md").read_text()
