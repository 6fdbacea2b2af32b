"""A `ConstraintSpec` -> an llguidance grammar, through Outlines' types (`Choice`, `Regex`, `CFG`, `JsonSchema`)
and the same `llguidance.grammar_from` calls as Outlines' llguidance backend. Bad grammars raise ValueError
with one readable line (see `errors`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache

import llguidance
from llguidance import LLMatcher
from outlines.types import CFG, Choice, JsonSchema, Regex
from outlines.types.dsl import to_regex

from decoding.constraints.errors import TYPE_NAMES, clip, grammar_error
from decoding.constraints.presets import PRESETS
from decoding.constraints.regex import ascii_digits, ascii_digits_in_lark, ascii_digits_in_schema
from decoding.sampling.params import ConstraintSpec


def choice_options(schema: str) -> tuple[str, ...]:
    """Multiple-choice options: one per line, duplicates and blank lines dropped.

    Leading spaces are kept: " Yes" is the tokenizer's own "␣Yes" after a prompt ending in a word, and
    stripping it would forbid exactly the token the model means. Trailing spaces (invisible in the box) go.
    """
    options = dict.fromkeys(line.rstrip() for line in schema.splitlines())
    options.pop("", None)
    if not options:
        raise ValueError("multiple choice needs at least one option: write one option per line")
    return tuple(options)


# The ready-made regexes: a value after a prompt usually follows a space, so these allow one unless told not to.
_PRESET_PATTERNS = frozenset(schema for kind, schema in PRESETS.values() if kind == "regex")


def leading_space(spec: ConstraintSpec) -> bool:
    """Whether the output may start with one space: as the spec says, else on for a ready-made pattern only."""
    if spec.leading_space is not None:
        return spec.leading_space
    return spec.type == "regex" and spec.schema in _PRESET_PATTERNS


def grammar_for(spec: ConstraintSpec) -> str:
    """The llguidance grammar of a constraint (cached); ValueError with llguidance's message when it is invalid."""
    return _grammar(spec.type, spec.schema, leading_space(spec))


@lru_cache(maxsize=128)  # keyed by text only: the grammar does not depend on the model
def _grammar(kind: str, schema: str, space: bool = False) -> str:
    if kind != "multiple_choice" and not schema.strip():
        raise ValueError(f"the {TYPE_NAMES[kind]} constraint is empty: write a {TYPE_NAMES[kind]} to constrain to")
    builders: dict[str, Callable[[str], str]] = {
        "multiple_choice": _choice_grammar,
        "regex": lambda pattern: _regex_grammar(pattern, space),
        "cfg": _lark_grammar,
        "json_schema": _json_schema_grammar,
    }
    grammar = builders[kind](schema)
    _raise_if_invalid(grammar, kind, schema)
    return grammar


def _choice_grammar(schema: str) -> str:
    # Outlines' Choice becomes a regex alternation of the escaped options.
    return llguidance.grammar_from("regex", to_regex(Choice(list(choice_options(schema)))))


def _regex_grammar(pattern: str, space: bool) -> str:
    # Check the user's own pattern first, so error positions point into what they wrote.
    _raise_if_invalid(LLMatcher.grammar_from_regex(pattern), "regex", pattern)
    regex = ascii_digits(pattern)
    return llguidance.grammar_from("regex", to_regex(Regex(f" ?(?:{regex})" if space else regex)))


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
        raise ValueError(clip(f'JSON schema must be a JSON object such as {{"type": "object"}}, got {text.strip()!r}'))
    try:
        term = JsonSchema(json.dumps(ascii_digits_in_schema(schema)))
    except Exception as exc:  # jsonschema.SchemaError, raised by Outlines' Draft 7 check
        where = "/".join(str(part) for part in getattr(exc, "path", ())) or "the top level"
        raise ValueError(clip(f"JSON schema is invalid at {where}: {getattr(exc, 'message', exc)}")) from None
    return llguidance.grammar_from("json_schema", term.schema)


def _raise_if_invalid(grammar: str, kind: str, schema: str) -> None:
    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise ValueError(grammar_error(kind, schema, error))
