"""One-line refusals: a library's multi-line message (source echo, carets, state dumps) as one short line."""

from __future__ import annotations

import functools
import re

MESSAGE_CHARS = 200  # a library's multi-line dump is cut to one line of about this length
_SOURCE_ECHO = re.compile(r"^\s*(\d+ \|.*|\^+)\s*$")  # llguidance's "  2 | text" and "     ^" lines
_DUMP_START = ("<state>", "<grammar>")


def one_line(message: str) -> str:
    """A library's multi-line message (source echo, carets, internal state dumps) as one short line."""
    lines = []
    for line in message.splitlines():
        if line.strip().startswith(_DUMP_START):
            break
        if line.strip() and not _SOURCE_ECHO.match(line):
            lines.append(" ".join(line.split()))
    text = "; ".join(lines).replace(":;", ":")
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3].rstrip() + "..."


def readable_errors(fn):
    """Every refusal leaves as a one-line ValueError: grammar compilers answer with multi-line dumps."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            if "\n" not in str(exc):
                raise
            raise ValueError(one_line(str(exc))) from None
        except RecursionError as exc:  # a parser (JSON schema, grammar) meeting absurdly deep nesting
            raise ValueError(f"the request is nested too deeply to read: {one_line(str(exc))}") from None

    return wrapper
