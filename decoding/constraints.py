"""Grammar constraints: Outlines types -> llguidance grammar -> a per-step mask over the model's vocabulary.

This module owns:
- the translation of a `ConstraintSpec` into an llguidance grammar, through Outlines' types (`Choice`, `Regex`,
  `CFG`, `JsonSchema`) and the same `llguidance.grammar_from` calls as Outlines' llguidance backend;
- the ASCII meaning of regex `\\d` (llguidance's `\\d` is any Unicode digit), in regexes, Lark regex terminals
  and JSON-schema patterns;
- readable `ValueError`s for bad grammars (llguidance reports them through `is_error()` / `get_error()`);
- `ConstraintTracker`: the llguidance tokenizer of one model and an LRU of matcher states keyed by
  (grammar, completion prefix), so a decoding step consumes one token instead of replaying the completion;
- `ConstraintMask`: the boolean mask of allowed next tokens, and whether the grammar is complete.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import llguidance
import llguidance.hf
import llguidance.numpy as llg_numpy
import numpy as np
import torch
from llguidance import LLMatcher
from outlines import types as outlines_types
from outlines.types import CFG, Choice, JsonSchema, Regex
from outlines.types.dsl import to_regex
from outlines.types.locale import us as outlines_us

from decoding.params import ConstraintSpec

if TYPE_CHECKING:
    from decoding.model import LoadedModel

STATE_CAPACITY = 256
GRAMMAR_CAPACITY = 32

REGEX_HELP = (
    "Rust regex syntax (like Python's re, without lookarounds or backreferences); the whole output must match. "
    r"\d means ASCII [0-9] here (write \p{Nd} for any Unicode digit)."
)

# Outlines' ready-made regex types, referenced (not copied) so they stay in sync with the installed Outlines.
PRESETS: dict[str, tuple[str, str]] = {
    name: ("regex", term.pattern)
    for name, term in (
        ("email", outlines_types.email),
        ("date (YYYY-MM-DD)", outlines_types.date),
        ("time (HH:MM:SS)", outlines_types.time),
        ("date and time", outlines_types.datetime),
        ("integer", outlines_types.integer),
        ("number", outlines_types.number),
        ("ipv4", outlines_types.ipv4),
        ("ipv6", outlines_types.ipv6),
        ("uuid4", outlines_types.uuid4),
        ("semver", outlines_types.semver),
        ("hex color", outlines_types.hex_color),
        ("phone number (US)", outlines_us.phone_number),
        ("zip code (US)", outlines_us.zip_code),
        ("phone number (E.164)", outlines_types.e164),
    )
}

EXAMPLES: dict[str, str] = {
    "multiple_choice": "positive\nnegative\nneutral",
    "regex": r"\d{1,2} (apples|oranges|pears)",
    "cfg": (
        "start: expr\n"
        'expr: term (("+" | "-") term)*\n'
        'term: factor (("*" | "/") factor)*\n'
        'factor: NUMBER | "(" expr ")"\n'
        "NUMBER: /\\d+/\n"
    ),
    "json_schema": json.dumps(
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 20},
                "age": {"type": "integer", "minimum": 0, "maximum": 130},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        indent=2,
    ),
}

_TYPE_NAMES = {
    "multiple_choice": "multiple choice",
    "regex": "regex",
    "cfg": "Lark grammar",
    "json_schema": "JSON schema",
}
_DIGIT_ESCAPES = {"d": "[0-9]", "D": "[^0-9]"}
_POSITION = re.compile(r"^(?:at )?(\d+)\((\d+)\): ")
_GRAMMAR_CONTEXT = re.compile(r"^\s*\d+ \| ")
_REGEX_ECHO = re.compile(r'^invalid regex ".*?" \(in regex\): ', re.DOTALL)


@dataclass(frozen=True)
class ConstraintMask:
    """The tokens the constraint allows next, over the model's vocabulary (ids beyond the tokenizer are False)."""

    valid: torch.Tensor
    accepting: bool
    complete: bool
    constraint_type: str


@dataclass(frozen=True)
class TrackerStats:
    """Counters that show the cache at work: a decoding step should add one consumed token and no compile."""

    compiled_grammars: int
    consumed_tokens: int
    state_hits: int
    cached_states: int


# ----------------------------------------------------------------------------------------------- \d means ASCII


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


# ------------------------------------------------------------------------------------------ spec -> grammar


def choice_options(schema: str) -> tuple[str, ...]:
    """Multiple-choice options: one per line, surrounding spaces and blank lines dropped, duplicates removed."""
    options = dict.fromkeys(line.strip() for line in schema.splitlines())
    options.pop("", None)
    if not options:
        raise ValueError("multiple choice needs at least one option: write one option per line")
    return tuple(options)


def grammar_for(spec: ConstraintSpec) -> str:
    """The llguidance grammar of a constraint (cached); ValueError with llguidance's message when it is invalid."""
    return _grammar(spec.type, spec.schema)


@lru_cache(maxsize=128)
def _grammar(kind: str, schema: str) -> str:
    if kind != "multiple_choice" and not schema.strip():
        raise ValueError(f"the {_TYPE_NAMES[kind]} constraint is empty: write a {_TYPE_NAMES[kind]} to constrain to")
    builders: dict[str, Callable[[str], str]] = {
        "multiple_choice": _choice_grammar,
        "regex": _regex_grammar,
        "cfg": _lark_grammar,
        "json_schema": _json_schema_grammar,
    }
    grammar = builders[kind](schema)
    _raise_if_invalid(grammar, kind, schema)
    return grammar


def _choice_grammar(schema: str) -> str:
    # Outlines' Choice becomes a regex alternation of the escaped options.
    return llguidance.grammar_from("regex", to_regex(Choice(list(choice_options(schema)))))


def _regex_grammar(pattern: str) -> str:
    # Check the user's own pattern first, so error positions point into what they wrote.
    _raise_if_invalid(LLMatcher.grammar_from_regex(pattern), "regex", pattern)
    return llguidance.grammar_from("regex", to_regex(Regex(ascii_digits(pattern))))


def _lark_grammar(text: str) -> str:
    _raise_if_invalid(_cfg_grammar(text), "cfg", text)
    return _cfg_grammar(CFG(ascii_digits_in_lark(text)).definition)


def _cfg_grammar(definition: str) -> str:
    # As Outlines' llguidance backend: Lark or GBNF ("grammar"), falling back to plain Lark.
    try:
        return llguidance.grammar_from("grammar", definition)
    except ValueError:
        return llguidance.grammar_from("lark", definition)


def _json_schema_grammar(text: str) -> str:
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"JSON schema is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(schema, dict | bool):
        raise ValueError(f'JSON schema must be a JSON object such as {{"type": "object"}}, got {text.strip()!r}')
    try:
        term = JsonSchema(json.dumps(ascii_digits_in_schema(schema)))
    except Exception as exc:  # jsonschema.SchemaError, raised by Outlines' Draft 7 check
        where = "/".join(str(part) for part in getattr(exc, "path", ())) or "the top level"
        raise ValueError(f"JSON schema is invalid at {where}: {getattr(exc, 'message', exc)}") from None
    return llguidance.grammar_from("json_schema", term.schema)


def _raise_if_invalid(grammar: str, kind: str, schema: str) -> None:
    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise ValueError(_readable_error(kind, schema, error))


def _readable_error(kind: str, schema: str, error: str) -> str:
    """llguidance's message with its position as line/column; a regex drops the internal `start: /.../` echo."""
    lines = error.rstrip().splitlines()
    if kind == "regex":
        lines = _drop_grammar_echo(lines)
        lines[0] = _POSITION.sub("", lines[0])
        return f"regex {schema!r} is invalid: " + _REGEX_ECHO.sub("", "\n".join(lines), count=1)
    lines[0] = _POSITION.sub(lambda m: f"line {m[1]}, column {m[2]}: ", lines[0])
    return f"{_TYPE_NAMES[kind]} is invalid: " + "\n".join(lines)


def _drop_grammar_echo(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        if index and _GRAMMAR_CONTEXT.match(line):
            return lines[:index]
    return lines


# ------------------------------------------------------------------------------------------- matcher states


class _State:
    """A matcher positioned after one completion prefix, and its mask once computed."""

    __slots__ = ("mask", "matcher")

    def __init__(self, matcher: LLMatcher) -> None:
        self.matcher = matcher
        self.mask: _Mask | None = None


@dataclass(frozen=True)
class _Mask:
    """A cached mask. numpy, not torch: small torch ops wake the intra-op thread pool, and on a busy CPU waiting
    for it costs milliseconds per op, more than llguidance itself."""

    valid: np.ndarray
    accepting: bool
    complete: bool


class ConstraintTracker:
    """One per loaded model: builds the llguidance tokenizer once (llguidance.hf.from_tokenizer, ~0.6 s).

    Matcher states are cached per (grammar, completion prefix) in a bounded LRU; a request for prefix + [t]
    copies the state of the longest cached prefix and consumes only the missing tokens. Cached matchers are
    never advanced in place, so every cached prefix stays valid for branching and rewinding. Thread-safe.
    """

    def __init__(self, tokenizer, vocab_size: int, capacity: int = STATE_CAPACITY) -> None:
        if vocab_size < 1:
            raise ValueError(f"vocab_size {vocab_size!r} must be a positive number of token ids")
        self._tokenizer = tokenizer
        try:
            self._ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer)
        except ValueError as exc:
            raise ValueError(
                f"grammar constraints need a fast (Rust) Hugging Face tokenizer; {type(tokenizer).__name__} is not"
                f" one ({exc})"
            ) from exc
        self.vocab_size = int(vocab_size)
        self._capacity = max(1, int(capacity))
        self._eos = frozenset(self._ll_tokenizer.eos_tokens)
        self._roots: OrderedDict[str, LLMatcher] = OrderedDict()
        self._states: OrderedDict[tuple[str, tuple[int, ...]], _State] = OrderedDict()
        self._bitmask = llg_numpy.allocate_token_bitmask(1, self._ll_tokenizer.vocab_size)
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def stats(self) -> TrackerStats:
        with self._lock:
            return TrackerStats(
                self._counts["compiled"], self._counts["consumed"], self._counts["hits"], len(self._states)
            )

    def mask(self, spec: ConstraintSpec, completion_ids: Sequence[int]) -> ConstraintMask:
        """The tokens allowed after `completion_ids`; a disabled spec allows every token."""
        if not spec.enabled:
            return ConstraintMask(torch.from_numpy(np.ones(self.vocab_size, dtype=np.bool_)), True, False, "none")
        grammar = grammar_for(spec)
        ids = self._checked_ids(completion_ids)
        with self._lock:
            state = self._state(grammar, ids, spec.type)
            if state.mask is None:
                state.mask = self._compute_mask(state.matcher, spec.type, ids)
            mask = state.mask
        # Callers get their own tensor, so an in-place edit cannot corrupt the cached mask.
        return ConstraintMask(torch.from_numpy(mask.valid.copy()), mask.accepting, mask.complete, spec.type)

    def check_forced(self, spec: ConstraintSpec, completion_ids: Sequence[int], new_ids: Sequence[int]) -> None:
        """ValueError naming the first of `new_ids` the constraint refuses after the ones before it; no change."""
        if not spec.enabled:
            return
        grammar = grammar_for(spec)
        ids = self._checked_ids(completion_ids)
        new = self._checked_ids(new_ids)
        with self._lock:
            matcher = self._state(grammar, ids, spec.type).matcher.deep_copy()
            for index, token in enumerate(new):
                if not self._allows(matcher, token):
                    raise ValueError(
                        f"forced token {index + 1} of {len(new)} ({self._text([token])!r}, id {token}) of"
                        f" {self._text(new)!r} is not allowed by the {_TYPE_NAMES[spec.type]} constraint after"
                        f" {self._text(ids + new[:index])!r}; nothing was changed"
                    )
                matcher.consume_token(token)

    # -- states

    def _state(self, grammar: str, ids: tuple[int, ...], kind: str) -> _State:
        key = (grammar, ids)
        state = self._states.get(key)
        if state is not None:
            self._states.move_to_end(key)
            self._counts["hits"] += 1
            return state
        start, base = self._nearest(grammar, ids)
        matcher = base.matcher.deep_copy() if base is not None else self._root(grammar, kind).deep_copy()
        for index in range(start, len(ids)):
            known = base.mask if base is not None and index == start else None
            self._consume(matcher, ids, index, kind, known)
        state = _State(matcher)
        self._states[key] = state
        if len(self._states) > self._capacity:
            self._states.popitem(last=False)
        return state

    def _nearest(self, grammar: str, ids: tuple[int, ...]) -> tuple[int, _State | None]:
        """The longest cached prefix of `ids` for this grammar: (its length, its state), or (0, None)."""
        parent = self._states.get((grammar, ids[:-1])) if ids else None
        if parent is not None:
            return len(ids) - 1, parent
        best: tuple[int, _State | None] = (0, None)
        for (cached_grammar, prefix), state in self._states.items():
            if cached_grammar == grammar and best[0] <= len(prefix) < len(ids) and ids[: len(prefix)] == prefix:
                best = (len(prefix), state)
        return best

    def _root(self, grammar: str, kind: str) -> LLMatcher:
        root = self._roots.get(grammar)
        if root is None:
            root = LLMatcher(self._ll_tokenizer, grammar, log_level=0)
            self._counts["compiled"] += 1
            if root.is_error():
                raise ValueError(f"{_TYPE_NAMES[kind]} is invalid for this tokenizer: {root.get_error()}")
            self._roots[grammar] = root
            if len(self._roots) > GRAMMAR_CAPACITY:
                self._roots.popitem(last=False)
        self._roots.move_to_end(grammar)
        return root

    def _consume(self, matcher: LLMatcher, ids: tuple[int, ...], index: int, kind: str, known: _Mask | None) -> None:
        # Validate first: consuming a refused token leaves the matcher in a permanent error state. A mask already
        # computed for this state answers without asking llguidance again.
        token = ids[index]
        allowed = bool(known.valid[token]) if known is not None else self._allows(matcher, token)
        if not allowed:
            raise ValueError(
                f"completion token {index} ({self._text([token])!r}, id {token}) is not allowed by the"
                f" {_TYPE_NAMES[kind]} constraint after {self._text(ids[:index])!r}"
            )
        matcher.consume_token(token)
        self._counts["consumed"] += 1
        if matcher.is_error():
            raise ValueError(
                f"the {_TYPE_NAMES[kind]} constraint failed at completion token {index}: {matcher.get_error()}"
            )

    def _allows(self, matcher: LLMatcher, token: int) -> bool:
        # validate_tokens refuses EOS once the matcher has stopped, although EOS is in its mask then.
        if token in self._eos and matcher.is_accepting():
            return True
        return token < self._ll_tokenizer.vocab_size and matcher.validate_tokens([token]) == 1

    # -- masks

    def _compute_mask(self, matcher: LLMatcher, kind: str, ids: tuple[int, ...]) -> _Mask:
        llg_numpy.fill_next_token_bitmask(matcher, self._bitmask, 0)
        if matcher.is_error():
            raise ValueError(f"the {_TYPE_NAMES[kind]} constraint failed: {matcher.get_error()}")
        valid = self._unpack(self._bitmask[0])
        allowed = int(np.count_nonzero(valid))
        if allowed == 0:
            raise ValueError(
                f"the constraint allows no token here (after {self._text(ids)!r}): the {_TYPE_NAMES[kind]} cannot be"
                " continued with this tokenizer's tokens"
            )
        accepting = matcher.is_accepting()
        eos_allowed = sum(bool(valid[t]) for t in self._eos if t < self.vocab_size)
        complete = accepting and (matcher.is_stopped() or allowed == eos_allowed)
        return _Mask(valid, accepting, complete)

    def _unpack(self, words: np.ndarray) -> np.ndarray:
        """Bit i of 32-bit word j is token 32*j + i; ids past the tokenizer's vocabulary stay False."""
        bits = np.unpackbits(words.astype("<i4", copy=False).view(np.uint8), bitorder="little").view(np.bool_)
        known = min(self.vocab_size, self._ll_tokenizer.vocab_size)
        valid = np.zeros(self.vocab_size, dtype=np.bool_)
        valid[:known] = bits[:known]
        return valid

    # -- helpers

    def _checked_ids(self, ids: Sequence[int]) -> tuple[int, ...]:
        out = tuple(int(i) for i in ids)
        if out and (min(out) < 0 or max(out) >= self.vocab_size):  # min/max keep the common case at C speed
            index, token = next((i, t) for i, t in enumerate(out) if not 0 <= t < self.vocab_size)
            raise ValueError(
                f"token id {token} at index {index} is outside the vocabulary: accepted is 0 to {self.vocab_size - 1}"
            )
        return out

    def _text(self, ids: Sequence[int], limit: int = 80) -> str:
        """Decoded text for messages; a long completion keeps only its end, where the problem is."""
        text = self._tokenizer.decode(list(ids[-limit:]), skip_special_tokens=False)
        return text if len(ids) <= limit else "…" + text


_TRACKER_LOCK = threading.Lock()
_current: tuple[int, ConstraintTracker] | None = None


def tracker_for(loaded: LoadedModel) -> ConstraintTracker:
    """The tracker of the current model (`LoadedModel`), rebuilt when another model is loaded."""
    global _current
    with _TRACKER_LOCK:
        if _current is None or _current[0] != loaded.key:
            _current = (loaded.key, ConstraintTracker(loaded.tokenizer, loaded.vocab_size))
        return _current[1]
