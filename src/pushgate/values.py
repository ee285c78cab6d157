"""`@value_class`: the dataclass of the objects the hot path makes per delivery.

    @value_class
    class Result:
        delivery_id: int
        ...

Such a class is a slotted dataclass that mypy checks as frozen (assigning to a field is a
type error), without `frozen=True` at run time: a frozen dataclass sets each field through
`object.__setattr__`, which made building an eleven-field `Result` 2.7 µs against 0.5 µs, and
a delivery builds six such objects (claimed, request, response, attempt, result, count). They
hash as frozen ones do. Everything else uses `@dataclass(frozen=True, slots=True)`.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def value_class(cls: type[T]) -> type[T]:
    """Make `cls` a value dataclass (see the module's docstring)."""
    return dataclasses.dataclass(slots=True, unsafe_hash=True)(cls)
