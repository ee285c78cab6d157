"""`@value_class`: checked as frozen by mypy, built without frozen's per-field cost, and
hashed and compared as a frozen dataclass is."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

from mypy import api

from pushgate.values import value_class


@value_class
class Point:
    x: int
    y: int = 0


def test_a_value_class_compares_hashes_and_replaces_as_a_frozen_dataclass() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Frozen:
        x: int
        y: int = 0

    assert Point(1) == Point(1, 0)
    assert Point(1) != Point(2)
    assert hash(Point(1, 2)) == hash(Frozen(1, 2))  # both hash the tuple of their fields
    assert len({Point(1), Point(1), Point(2)}) == 2
    assert dataclasses.replace(Point(1, 2), y=3) == Point(1, 3)
    assert not hasattr(Point(1), "__dict__")  # slotted


def test_mypy_refuses_assigning_to_a_field_of_a_value_class(tmp_path: Path) -> None:
    source = tmp_path / "assigns.py"
    source.write_text(
        textwrap.dedent(
            """
            from pushgate.integrations.base import OutboundRequest
            from pushgate.values import value_class

            @value_class
            class Point:
                x: int

            Point(1).x = 2
            OutboundRequest("POST", "https://example.com", {}).url = "https://elsewhere"
            """
        )
    )
    out, _, status = api.run(["--strict", "--no-incremental", str(source)])
    assert status == 1
    assert out.count("is read-only") == 2, out
