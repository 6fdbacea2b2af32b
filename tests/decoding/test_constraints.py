"""Grammar constraints: decoding on the real embedded model, masks equal to llguidance's, errors, cache reuse."""

from __future__ import annotations

import json
import re
import threading
from functools import cache

import jsonschema
import lark
import llguidance
import llguidance.hf
import numpy as np
import pytest
import torch
from llguidance import LLMatcher
from outlines import types as outlines_types
from outlines.backends.llguidance import LLGuidanceBackend
from outlines.types import Choice, Regex
from outlines.types.dsl import to_regex
from transformers import DynamicCache

from decoding import constraints
from decoding.constraints import ConstraintTracker, grammar_for
from decoding.sampling.params import ConstraintSpec

CITIES = ["Paris", "London", "Berlin", "Madrid"]
SENTENCE_GRAMMAR = r"""
start: subject " " verb " " object "."
subject: "The cat" | "A dog" | "My friend"
verb: "eats" | "sees" | "likes"
object: COUNT " apples" | "the ball"
COUNT: /[1-9]\d?/
"""
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
DATE = constraints.PRESETS["date (YYYY-MM-DD)"][1]
SPECS = {
    "multiple_choice": ConstraintSpec(True, "multiple_choice", "\n".join([*CITIES, "", "Paris"])),
    "regex": ConstraintSpec(True, "regex", DATE),
    "cfg": ConstraintSpec(True, "cfg", SENTENCE_GRAMMAR),
    "json_schema": ConstraintSpec(True, "json_schema", json.dumps(PERSON_SCHEMA)),
}
PROMPTS = {
    "multiple_choice": "What is the capital of France? Answer with the city name only.",
    "regex": "When did the Apollo 11 landing happen? Answer with a date in YYYY-MM-DD format.",
    "cfg": "Write one short sentence about an animal.",
    "json_schema": "Describe a person called Anna, aged 31, as JSON with keys name and age.",
}
ARABIC_INDIC_THREE = "٣"


@pytest.fixture(scope="module")
def tracker(embedded) -> ConstraintTracker:
    return ConstraintTracker(embedded.tokenizer, embedded.vocab_size)


@pytest.fixture(scope="module")
def ll_tokenizer(tokenizer):
    """An llguidance tokenizer of our own, to compute reference masks independently of the tracker."""
    return llguidance.hf.from_tokenizer(tokenizer)


@pytest.fixture(scope="module")
def decode(embedded, tracker):
    """decode(type, seed) -> (completion ids, text, finish reason); seed None is greedy. Memoised per module."""

    @cache
    def run(kind: str, seed: int | None) -> tuple[tuple[int, ...], str, str]:
        return _decode(embedded, tracker, SPECS[kind], PROMPTS[kind], seed)

    return run


def _decode(loaded, tracker, spec, prompt, seed, max_steps=40):
    """A plain constrained loop: KV-cached forward, mask, argmax or seeded sample; stops when complete or at EOS."""
    tokenizer, model = loaded.tokenizer, loaded.model
    prompt_ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    cache_kv = DynamicCache(config=model.config)
    step_input = torch.tensor([prompt_ids])
    completion: list[int] = []
    for _ in range(max_steps):
        mask = tracker.mask(spec, completion)
        if mask.complete:
            return tuple(completion), tokenizer.decode(completion), "constraint_complete"
        with torch.inference_mode():
            out = model(input_ids=step_input, past_key_values=cache_kv, use_cache=True, logits_to_keep=1)
        logits = out.logits[0, -1].float().masked_fill(~mask.valid, float("-inf"))
        if generator is None:
            token = int(logits.argmax())
        else:
            token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))
        if token == tokenizer.eos_token_id:
            return tuple(completion), tokenizer.decode(completion), "eos"
        completion.append(token)
        step_input = torch.tensor([[token]])
    return tuple(completion), tokenizer.decode(completion), "max_steps"


def _reference_mask(ll_tokenizer, spec, prefix, vocab_size) -> tuple[torch.Tensor, bool]:
    matcher = LLMatcher(ll_tokenizer, grammar_for(spec))
    assert matcher.consume_tokens(list(prefix)), matcher.get_error()
    bias = np.frombuffer(matcher.compute_logit_bias(), dtype=np.uint8)
    valid = torch.zeros(vocab_size, dtype=torch.bool)
    valid[: len(bias)] = torch.from_numpy(bias > 0)
    return valid, matcher.is_accepting()


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


# ------------------------------------------------------------------------------------------ decoding runs


@pytest.mark.parametrize("seed", [None, 7], ids=["greedy", "sampled"])
@pytest.mark.parametrize("kind", list(SPECS))
def test_decoding_run_matches_constraint(decode, kind, seed):
    _, text, reason = decode(kind, seed)
    assert reason in {"constraint_complete", "eos"}, f"{kind} did not finish in 40 steps: {text!r}"
    if kind == "multiple_choice":
        assert text in CITIES
    elif kind == "regex":
        assert re.fullmatch(DATE, text) and text.isascii(), text
    elif kind == "cfg":
        lark.Lark(SENTENCE_GRAMMAR).parse(text)
    else:
        jsonschema.validate(json.loads(text), PERSON_SCHEMA)


@pytest.mark.parametrize("kind", list(SPECS))
def test_masks_equal_llguidance_along_a_run(decode, tracker, ll_tokenizer, embedded, kind):
    ids, _, reason = decode(kind, None)
    for k in sorted({0, 1, len(ids) // 2, len(ids)}):
        mask = tracker.mask(SPECS[kind], ids[:k])
        expected, accepting = _reference_mask(ll_tokenizer, SPECS[kind], ids[:k], embedded.vocab_size)
        assert torch.equal(mask.valid, expected), f"{kind} prefix {k}"
        assert mask.accepting == accepting
        assert mask.constraint_type == kind
    final = tracker.mask(SPECS[kind], ids)
    assert final.accepting
    assert final.complete == (reason == "constraint_complete")


def test_complete_means_only_eos_left(tracker, tokenizer):
    spec = SPECS["multiple_choice"]
    mask = tracker.mask(spec, _ids(tokenizer, "Paris"))
    assert mask.accepting and mask.complete
    assert torch.nonzero(mask.valid).flatten().tolist() == [tokenizer.eos_token_id]
    assert not tracker.mask(spec, _ids(tokenizer, "Par")).accepting


def test_accepting_but_not_complete_while_more_may_follow(tracker, tokenizer):
    mask = tracker.mask(ConstraintSpec(True, "regex", r"\d+"), _ids(tokenizer, "12"))
    assert mask.accepting and not mask.complete
    assert mask.valid[tokenizer.eos_token_id]


# ------------------------------------------------------------------------------------------ cache reuse


def test_a_step_consumes_one_token_and_compiles_nothing(tracker, tokenizer):
    spec = ConstraintSpec(True, "regex", r"[a-z ]{1,40}\.")
    ids = _ids(tokenizer, "the quick brown fox")
    for k in range(len(ids)):  # step through the prefixes, as a decoding session does
        tracker.mask(spec, ids[:k])
    before = tracker.stats()
    tracker.mask(spec, ids)
    after = tracker.stats()
    assert after.consumed_tokens - before.consumed_tokens == 1
    assert after.compiled_grammars == before.compiled_grammars
    tracker.mask(spec, ids[:1])  # rewinding hits a cached state
    rewound = tracker.stats()
    assert rewound.consumed_tokens == after.consumed_tokens
    assert rewound.state_hits == after.state_hits + 1


def test_jump_ahead_replays_only_the_missing_tokens(tracker, tokenizer):
    spec = ConstraintSpec(True, "regex", r"[a-z ]{1,60}")
    ids = _ids(tokenizer, "a long sentence with many words in it")
    tracker.mask(spec, ids[:3])
    before = tracker.stats().consumed_tokens
    tracker.mask(spec, ids)
    assert tracker.stats().consumed_tokens - before == len(ids) - 3


def test_lru_is_bounded_and_evicted_states_are_rebuilt(tokenizer, ll_tokenizer):
    small = ConstraintTracker(tokenizer, len(tokenizer), capacity=4)
    spec = ConstraintSpec(True, "regex", r"[a-z ]{1,60}")
    ids = _ids(tokenizer, "one two three four five six")
    for k in range(len(ids) + 1):
        small.mask(spec, ids[:k])
    assert small.stats().cached_states == 4
    expected, _ = _reference_mask(ll_tokenizer, spec, ids[:1], len(tokenizer))
    assert torch.equal(small.mask(spec, ids[:1]).valid, expected)


def test_concurrent_requests_agree_with_serial_ones(tracker, tokenizer):
    spec = ConstraintSpec(True, "json_schema", json.dumps(PERSON_SCHEMA))
    ids = _ids(tokenizer, '{"name": "Bob", "age": 4')
    serial = [tracker.mask(spec, ids[:k]).valid for k in range(len(ids) + 1)]
    results: dict[int, torch.Tensor] = {}

    def work(k: int) -> None:
        results[k] = tracker.mask(spec, ids[:k]).valid

    threads = [threading.Thread(target=work, args=(k,)) for k in reversed(range(len(ids) + 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(torch.equal(results[k], serial[k]) for k in range(len(ids) + 1))


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kind", "schema", "expected"),
    [
        ("regex", "a(b", r"regex 'a\(b' is invalid: unclosed group at column 2$"),
        ("cfg", "start: foo\n", r'Lark grammar is invalid: line 1, column 8: unknown name: "foo"$'),
        ("json_schema", '{"type": ', r"not valid JSON: .* line 1, column 10"),
        ("json_schema", '{"type": "foo"}', r"JSON schema is invalid at type: 'foo'"),
        ("json_schema", "[1, 2]", r"must be a JSON object"),
        ("multiple_choice", "\n  \n", r"multiple choice needs at least one option"),
        ("regex", "", r"regex constraint is empty"),
    ],
)
def test_invalid_constraints_give_readable_errors(tracker, kind, schema, expected):
    spec = ConstraintSpec(True, kind, schema)
    with pytest.raises(ValueError, match=re.compile(expected, re.DOTALL)):
        grammar_for(spec)
    with pytest.raises(ValueError, match=re.compile(expected, re.DOTALL)):
        tracker.mask(spec, [])


@pytest.mark.parametrize(
    ("kind", "schema", "expected"),
    [
        ("json_schema", '{"$ref": "#"}', 'JSON schema constraint failed: it can produce no text here (a "$ref" that'),
        ("cfg", "start: a\na: b\nb: a\n", "Lark grammar constraint failed: it can produce no text here (a rule that"),
        ("cfg", 'start: "a" |\n  ;;; bad', "Lark grammar is invalid: line 2, column 3: lexer error"),
        (
            "cfg",
            "start: /a(/",
            "Lark grammar is invalid: line 1, column 8: invalid regex 'a(': unclosed group at column 2",
        ),
        ("cfg", "start: x\n" * 80, 'Lark grammar is invalid: line 2, column 8: duplicate rule: "start"'),
        ("regex", "x" * 300 + "(", "is invalid: unclosed group at column 301"),
        ("json_schema", "[" + "1," * 300 + "1]", "JSON schema must be a JSON object"),
    ],
)
def test_grammar_errors_are_one_readable_line(tracker, kind, schema, expected):
    """llguidance's multi-line reports (grammar echo, carets, matcher state dump) become one short line."""
    with pytest.raises(ValueError) as raised:
        tracker.mask(ConstraintSpec(True, kind, schema), [])
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message and len(message) <= 200 and "<state>" not in message and "Parser:" not in message


def test_forced_token_not_allowed_changes_nothing(tracker, tokenizer):
    spec = SPECS["regex"]
    prefix = _ids(tokenizer, "1969-0")
    before = tracker.mask(spec, prefix)
    with pytest.raises(ValueError, match=r"forced token 1 of \d+ \('x.*is not allowed by the regex constraint"):
        tracker.check_forced(spec, prefix, _ids(tokenizer, "xyz"))
    tracker.check_forced(spec, prefix, _ids(tokenizer, "7-20"))
    after = tracker.mask(spec, prefix)
    assert torch.equal(before.valid, after.valid)
    assert tracker.mask(spec, prefix + _ids(tokenizer, "7")).valid.any()


def test_completion_token_not_allowed_names_its_index(tracker, tokenizer):
    spec = SPECS["regex"]
    prefix = _ids(tokenizer, "1969")
    bad = prefix + _ids(tokenizer, "x")
    with pytest.raises(ValueError, match=rf"completion token {len(prefix)} \('x', id \d+\) is not allowed"):
        tracker.mask(spec, bad)
    assert tracker.mask(spec, prefix).valid.any()  # the cached prefix state is still healthy
    assert not tracker.mask(spec, prefix + _ids(tokenizer, "-")).accepting


def test_no_allowed_token_is_an_error(tokenizer):
    narrow = ConstraintTracker(tokenizer, 10)  # only special tokens: nothing can start the text "a"
    with pytest.raises(ValueError, match="the constraint allows no token here"):
        narrow.mask(ConstraintSpec(True, "regex", "a"), [])


def test_additional_properties_follow_the_schema(tracker, tokenizer):
    open_schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    closed_schema = {**open_schema, "additionalProperties": False}
    extra = _ids(tokenizer, '{"b": 1}')
    tracker.check_forced(ConstraintSpec(True, "json_schema", json.dumps(open_schema)), [], extra)
    with pytest.raises(ValueError, match="is not allowed by the JSON schema constraint"):
        tracker.check_forced(ConstraintSpec(True, "json_schema", json.dumps(closed_schema)), [], extra)


def test_out_of_vocabulary_id_is_refused(tracker, embedded):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tracker.mask(SPECS["regex"], [embedded.vocab_size])


# ------------------------------------------------------------------------------------------ \d is ASCII


@pytest.mark.parametrize(
    ("kind", "schema", "before"),
    [
        ("regex", r"\d+", ""),
        ("regex", r"[\d]+", ""),
        ("cfg", "start: NUM\nNUM: /\\d+/\n", ""),
        ("json_schema", json.dumps({"type": "string", "pattern": r"^\d+$"}), '"'),
    ],
)
def test_backslash_d_is_ascii(tracker, tokenizer, kind, schema, before):
    spec = ConstraintSpec(True, kind, schema)
    prefix = _ids(tokenizer, before)
    tracker.check_forced(spec, prefix, _ids(tokenizer, "42"))
    with pytest.raises(ValueError, match="is not allowed"):
        tracker.check_forced(spec, prefix, _ids(tokenizer, ARABIC_INDIC_THREE))
    allowed = torch.nonzero(tracker.mask(spec, prefix).valid).flatten().tolist()
    assert all(re.fullmatch("[0-9]+", tokenizer.decode([t])) for t in allowed)


def test_ascii_digits_rewrite_respects_escapes():
    assert constraints.ascii_digits(r"\d\D[a\d]\\d\\\d") == r"[0-9][^0-9][a[0-9]]\\d\\[0-9]"
    lark_text = 'A: "\\d" /\\d+/ // not /\\d/ here\nB: /[\\/\\d]/i\n'
    assert constraints.ascii_digits_in_lark(lark_text) == 'A: "\\d" /[0-9]+/ // not /\\d/ here\nB: /[\\/[0-9]]/i\n'


def test_unicode_digits_stay_available_with_p_nd(tracker, tokenizer):
    tracker.check_forced(ConstraintSpec(True, "regex", r"\p{Nd}+"), [], _ids(tokenizer, ARABIC_INDIC_THREE))
    assert r"\d means ASCII [0-9]" in constraints.REGEX_HELP


# ------------------------------------------------------------------------------------------ Outlines, presets


def test_grammars_are_built_the_way_outlines_backend_builds_them(ll_tokenizer):
    backend = LLGuidanceBackend.__new__(LLGuidanceBackend)  # no Outlines model is needed to build a grammar
    backend.llg, backend.llg_tokenizer, backend.tensor_library_name = llguidance, ll_tokenizer, "torch"
    pattern = "[A-Z][a-z]+ (is|was) here"
    assert (
        grammar_for(ConstraintSpec(True, "regex", pattern))
        == backend.get_regex_logits_processor(to_regex(Regex(pattern))).grammar
    )
    choice = grammar_for(SPECS["multiple_choice"])
    assert choice == backend.get_regex_logits_processor(to_regex(Choice(CITIES))).grammar
    cfg_text = 'start: "a" | "b"\n'
    assert grammar_for(ConstraintSpec(True, "cfg", cfg_text)) == backend.get_cfg_logits_processor(cfg_text).grammar


EMAILS = ("jo@example.com", "a.b+c@mail.example.org", "x_1-2@a-b.co")
NOT_EMAILS = ("jo@example", "jo@@example.com", ".jo@example.com", "jo.@example.com", "Jo@example.com", "jo@-a.com")


def test_presets_come_from_outlines_and_compile():
    # email: a bounded subset of Outlines' pattern (every address it accepts, Outlines accepts)
    email = constraints.PRESETS["email"][1]
    assert all(re.fullmatch(email, a) and re.fullmatch(outlines_types.email.pattern, a) for a in EMAILS)
    assert not any(re.fullmatch(email, a) for a in NOT_EMAILS)
    assert constraints.PRESETS["ipv4"] == ("regex", outlines_types.ipv4.pattern)
    assert {"email", "date (YYYY-MM-DD)", "time (HH:MM:SS)", "integer", "phone number (US)"} <= set(constraints.PRESETS)
    for kind, schema in constraints.PRESETS.values():
        assert grammar_for(ConstraintSpec(True, kind, schema))


def test_examples_compile_for_every_type():
    assert set(constraints.EXAMPLES) == set(SPECS)
    for kind, schema in constraints.EXAMPLES.items():
        assert grammar_for(ConstraintSpec(True, kind, schema))


def test_choice_options_drop_blanks_and_duplicates_and_keep_leading_spaces():
    assert constraints.choice_options(" yes \n\nno\r\n yes\n  \nyes") == (" yes", "no", "yes")


# ------------------------------------------------------------------------------------------ vocabulary, trackers


def test_ids_past_the_tokenizer_vocabulary_are_invalid(tokenizer):
    wide = ConstraintTracker(tokenizer, len(tokenizer) + 64)
    mask = wide.mask(ConstraintSpec(True, "regex", "[a-z]+"), [])
    assert mask.valid.shape == (len(tokenizer) + 64,)
    assert not mask.valid[len(tokenizer) :].any()


def test_disabled_constraint_allows_everything(tracker, embedded):
    mask = tracker.mask(ConstraintSpec(False, "regex", "a"), [])
    assert mask.valid.all() and mask.valid.shape == (embedded.vocab_size,)
    tracker.check_forced(ConstraintSpec(False, "regex", "a"), [], [1, 2, 3])


def test_tracker_for_keeps_one_tracker_for_the_current_model(embedded, tiny):
    first = constraints.tracker_for(embedded)
    assert constraints.tracker_for(embedded) is first
    other = constraints.tracker_for(tiny)
    assert other is not first and other.vocab_size == tiny.vocab_size
