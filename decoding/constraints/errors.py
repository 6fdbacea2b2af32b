"""llguidance's error text made readable: one line, naming the constraint type, without Rust's debug dump.

llguidance reports a bad grammar as several lines (the position, an echo of the grammar with a caret, for a
regex the regex crate's own block, for a failing matcher a dump of its state). A person needs one line:
where, and what is wrong. Every message built here is at most `MAX_CHARS` long.
"""

from __future__ import annotations

import re

MAX_CHARS = 200
TYPE_NAMES = {
    "multiple_choice": "multiple choice",
    "regex": "regex",
    "cfg": "Lark grammar",
    "json_schema": "JSON schema",
}
# what the matcher's stop reasons mean to someone writing a grammar
STOP_REASONS = {
    "NoExtensionBias": "it can produce no text here",
    "NoExtension": "it can produce no text here",
    "LexerTooComplex": "the grammar's tokens are too complex for llguidance",
    "ParserTooComplex": "the grammar is too complex for llguidance",
    "MaxTokensTotal": "the grammar's token limit was reached",
}
# the usual cause of "no text": a definition that never bottoms out
LOOP_HINTS = {"json_schema": ' (a "$ref" that only refers to itself?)', "cfg": " (a rule that only refers to itself?)"}
_POSITION = re.compile(r"^(?:at )?(\d+)\((\d+)\): ")
_REGEX_BLOCK = re.compile(r'(?:invalid regex "(?P<regex>.*?)" \(in regex\): )?regex parse error:$')


def grammar_error(kind: str, schema: str, error: str) -> str:
    """The message for a grammar llguidance refuses: "<type> is invalid: line L, column C: <reason>"."""
    lines = [line for line in error.rstrip().splitlines() if line.strip()]
    position = _POSITION.match(lines[0]) if lines else None
    if position:
        lines[0] = lines[0][position.end() :]
    if kind == "regex":  # llguidance wraps the regex in a grammar: its line/column point into the wrapper
        return clip(f"regex {_quoted(schema)} is invalid: {_reason(lines, echo=False)}")
    reason = _reason(lines, echo=True)
    where = f"line {position[1]}, column {position[2]}: " if position else ""
    return clip(f"{TYPE_NAMES[kind]} is invalid: {where}{reason}")


def matcher_error(kind: str, error: str, where: str = "") -> str:
    """The message for a matcher that failed while running: its first line, in words, without the state dump."""
    first = error.split("<state>", 1)[0].strip().splitlines()
    code = first[0].strip() if first else "unknown error"
    place = f" {where}" if where else ""
    hint = LOOP_HINTS.get(kind, "") if code.startswith("NoExtension") else ""
    return clip(f"the {TYPE_NAMES[kind]} constraint failed{place}: {STOP_REASONS.get(code, code)}{hint}")


def clip(message: str, limit: int = MAX_CHARS) -> str:
    """One line of at most `limit` characters."""
    line = " ".join(message.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _reason(lines: list[str], echo: bool) -> str:
    """The first line, the reason (the lines after it echo the grammar); a regex crate block becomes
    "invalid regex '<it>': <what> at column N" (`echo` False: just "<what> at column N")."""
    if not lines:
        return "unknown error"
    block = _REGEX_BLOCK.search(lines[0])
    if block is None:
        return lines[0].strip()
    # the regex crate's block: the regex indented by 4, a caret under the culprit, then "error: <what>"
    detail = next((line.removeprefix("error: ") for line in lines if line.startswith("error: ")), "parse error")
    caret = lines[2] if len(lines) > 2 and set(lines[2].strip()) <= {"^", "-"} else ""
    column = f" at column {caret.index('^') - 3}" if "^" in caret else ""
    if not echo:
        return detail + column
    regex = f" {_quoted(block['regex'])}" if block["regex"] is not None else ""
    return f"{lines[0][: block.start()]}invalid regex{regex}: {detail}{column}"


def _quoted(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 1] + "…")
