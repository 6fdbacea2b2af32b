"""The JSON value types the request models share, read as the hand parser (decoding.fields) reads them.

An integer may be written `3.0` (JSON clients differ in how they write whole numbers); a list may come as a
tuple from Python callers; numbers are finite; `null` is a missing key, so every optional field is nullable.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import annotated_types
from pydantic import BeforeValidator, ConfigDict, Field

T = TypeVar("T")

STRICT = ConfigDict(strict=True, extra="forbid")  # a request: exact JSON types, unknown keys refused


def _integral(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _listed(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def integer(**bounds: float) -> Any:
    """An integer within `bounds` (ge, gt, le, lt). The bounds come before the `3.0` reader so that pydantic
    states them in the schema as minimum/maximum (after it, they would only be checked)."""
    return Annotated[int, annotated_types.Interval(**bounds), BeforeValidator(_integral)]


def number(**bounds: float) -> Any:
    """A finite number within `bounds` (ge, gt, le, lt)."""
    return Annotated[float, annotated_types.Interval(**bounds), Field(allow_inf_nan=False)]


Integer = integer()
TokenId = integer(ge=0)
NonEmptyText = Annotated[str, Field(min_length=1)]
List = Annotated[list[T], BeforeValidator(_listed)]
