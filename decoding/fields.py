"""Strict reading of JSON request values: exact types, unknown keys refused, valid Unicode text.

Every reader returns the value in its Python form or raises ValueError with one line naming the
field, the bad value and what is accepted. The rules, the same for every request field:

- an object is a JSON object whose keys are all among the accepted ones;
- a boolean is `true` or `false`, never a string or a number;
- an integer is a JSON number with an integral value (`3` or `3.0`: JSON clients differ in how they
  write whole numbers); `3.5`, NaN, infinities, strings and booleans are refused;
- a number is finite; booleans are refused;
- text is a string without lone surrogates (they cannot be encoded, so no tokenizer can read them);
- `null` is the same as leaving the key out, so the field takes its default.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Collection, Sequence

SHOWN_CHARS = 60  # of a bad value quoted in a message: enough to recognise it, short enough for one line


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxstring = short.maxother = SHOWN_CHARS
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict = 3, 5, 5, 5
    return short


_SHORT = _short_repr()  # bounded work even for a huge or deeply nested value


def shown(value: object) -> str:
    """A bad value as quoted in a message: its repr, cut to about SHOWN_CHARS."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an integer with more digits than Python converts to text
        return f"(a {type_name(value)} too large to show)"


def type_name(value: object) -> str:
    """The JSON name of a value's type (what a caller of the JSON API sent)."""
    for kind, name in ((bool, "boolean"), (str, "string"), (int | float, "number"), (dict, "object")):
        if isinstance(value, kind):
            return name
    if isinstance(value, list | tuple):
        return "list"
    return "null" if value is None else type(value).__name__


def obj(name: str, value: object, accepted: Collection[str]) -> dict:
    """A JSON object with only accepted keys; null is an empty object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, got {type_name(value)}")
    unknown = sorted(repr(key) if not isinstance(key, str) else key for key in value if key not in accepted)
    if unknown:
        what = f"key {shown(unknown[0])}" if len(unknown) == 1 else f"keys {shown(unknown)}"
        raise ValueError(f"unknown {what} in {name}: accepted are {sorted(accepted)}")
    return value


def text(name: str, value: object) -> str:
    """A string of valid Unicode (no lone surrogates)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type_name(value)} {shown(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{name} contains a lone surrogate (U+{ord(value[exc.start]):04X}) at character {exc.start}: "
                "send valid Unicode text"
            ) from None
    return value


def string(name: str, value: object, default: str = "") -> str:
    """Optional text: null or missing is `default`."""
    return default if value is None else text(name, value)


def boolean(name: str, value: object, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValueError(f"{name} {shown(value)} is not a boolean: accepted are true and false (JSON booleans)")
    return value


def integer(name: str, value: object, low: int | None = None, high: int | None = None, accepted: str = "") -> int:
    """An integral number within [low, high] (either bound may be open)."""
    accepted = accepted or _integer_range(low, high)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} {shown(value)} is not an integer: accepted is {accepted}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} {shown(value)} is out of range: accepted is {accepted}")
    return value


def _integer_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an integer from {low} to {high}"
    if low is not None:
        return f"an integer >= {low}"
    return "an integer" if high is None else f"an integer <= {high}"


def number(name: str, value: object, accepted: str) -> float:
    """A finite real number (an integer is a number too; a boolean is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} {shown(value)} is not a number: accepted is {accepted}")
    try:
        result = float(value)
    except OverflowError:  # an integer beyond float range
        result = math.inf
    if not math.isfinite(result):
        raise ValueError(f"{name} {shown(value)} is not a finite number: accepted is {accepted}")
    return result


def choice(name: str, value: object, accepted: Sequence[str], default: str) -> str:
    """One of the accepted words; null or missing is `default`."""
    return default if value is None else one_of(name, value, accepted)


def one_of(name: str, value: object, accepted: Sequence[str]) -> str:
    """One of the accepted words; null is refused like any other value."""
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"{name} {shown(value)} is not accepted: use one of {', '.join(accepted)}")
    return value


def items(name: str, value: object) -> list | tuple:
    """A JSON list (a tuple from Python callers); null is empty."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValueError(f"{name} must be a list, got {type_name(value)} {shown(value)}")
    return value


def texts(name: str, value: object) -> tuple[str, ...]:
    """A list of non-empty strings; null is empty."""
    out = []
    for i, item in enumerate(items(name, value)):
        if text(f"{name}[{i}]", item) == "":
            raise ValueError(f"{name}[{i}] is empty: each entry must be a non-empty string")
        out.append(item)
    return tuple(out)
