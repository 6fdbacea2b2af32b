r"""`\d` means ASCII digits: rewriting regexes, Lark regex terminals and JSON-schema patterns.

llguidance's `\d` is any Unicode digit, and a model happily emits exotic digits; a user writing `\d` means
`[0-9]`. `\p{Nd}` still asks for every digit.
"""

from __future__ import annotations

_DIGIT_ESCAPES = {"d": "[0-9]", "D": "[^0-9]"}


def ascii_digits(pattern: str) -> str:
    r"""Rewrite `\d` to `[0-9]` and `\D` to `[^0-9]`; an escaped backslash (`\\d`) stays as it is.

    The replacement is a bracketed class, which Rust regex also accepts nested inside a class (`[a\d]` becomes
    `[a[0-9]]`), so character classes need no special handling.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(_DIGIT_ESCAPES.get(pattern[i + 1], pattern[i : i + 2]))
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def ascii_digits_in_lark(grammar: str) -> str:
    r"""Apply `ascii_digits` to every `/regex/` terminal of a Lark grammar, skipping strings and comments."""
    out: list[str] = []
    i = 0
    while i < len(grammar):
        char = grammar[i]
        if grammar.startswith("//", i) or char == "#":
            end = grammar.find("\n", i)
            end = len(grammar) if end < 0 else end
        elif char in '"/':
            end = _end_of_quoted(grammar, i)
        else:
            out.append(char)
            i += 1
            continue
        chunk = grammar[i:end]
        if char == "/" and not grammar.startswith("//", i) and len(chunk) >= 2 and chunk.endswith("/"):
            chunk = "/" + ascii_digits(chunk[1:-1]) + "/"
        out.append(chunk)
        i = end
    return "".join(out)


def _end_of_quoted(text: str, start: int) -> int:
    """Index after the quote closing the one at `start` (escapes skipped); an unclosed one ends at the line end."""
    quote = text[start]
    i = start + 1
    while i < len(text) and text[i] not in (quote, "\n"):
        i += 2 if text[i] == "\\" else 1
    return min(i + 1, len(text)) if i < len(text) and text[i] == quote else min(i, len(text))


def ascii_digits_in_schema(node: object) -> object:
    r"""A copy of a JSON schema with `\d` made ASCII in `pattern` values and `patternProperties` keys."""
    if isinstance(node, list):
        return [ascii_digits_in_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("enum", "const", "default", "examples"):  # data, not schemas
            out[key] = value
        elif key == "pattern" and isinstance(value, str):
            out[key] = ascii_digits(value)
        elif key == "patternProperties" and isinstance(value, dict):
            out[key] = {ascii_digits(k): ascii_digits_in_schema(v) for k, v in value.items()}
        else:
            out[key] = ascii_digits_in_schema(value)
    return out
