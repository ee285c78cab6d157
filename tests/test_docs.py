"""The reference docs keep up with the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushgate.integrations import default_catalog
from pushgate.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`PUSHGATE_{name.upper()}`" in (ROOT / "docs" / "settings.md").read_text()


@pytest.mark.parametrize("key", [integration.key for integration in default_catalog()])
def test_every_integration_has_its_page(key: str) -> None:
    page = ROOT / "docs" / "integrations" / f"{key}.md"
    assert page.exists()
    assert "```" in page.read_text()  # an example payload
