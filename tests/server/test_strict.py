"""Hostile requests against the service layer: each is refused with one readable line before any work,
and a normal request afterwards still gives the same answer."""

from __future__ import annotations

import pytest

from backends.model import STORE
from service import operations as service
from service import readable

VOCAB = 49152
GOOD = {"prompt": "The capital of France is", "use_chat_template": False, "top_k": 3, "params": {"greedy": True}}
S = "\ud800"  # a lone surrogate

REQUEST_CASES = [
    ([], "request must be a JSON object, got list"),
    ("prompt", "request must be a JSON object, got string"),
    (None, "request must be a JSON object, got null"),
    (7, "request must be a JSON object, got number"),
    ({}, "prompt is empty"),
    ({"prompt": 123}, "prompt must be a string, got number 123"),
    ({"prompt": ""}, "prompt is empty"),
    ({"prompt": ["a"]}, "prompt must be a string, got list"),
    ({"prompt": "a" + S}, "prompt contains a lone surrogate (U+D800) at character 1"),
    (GOOD | {"system_prompt": ["a"]}, "system_prompt must be a string, got list"),
    (GOOD | {"system_prompt": S}, "system_prompt contains a lone surrogate"),
    (GOOD | {"use_chat_template": "false"}, "use_chat_template 'false' is not a boolean"),
    (GOOD | {"use_chat_template": 0}, "use_chat_template 0 is not a boolean"),
    (GOOD | {"temperature": 0.5}, "unknown key 'temperature' in the request: accepted are ['"),
    (GOOD | {"b": 1, "a": 2}, "unknown keys ['a', 'b'] in the request"),
    (GOOD | {1: 2}, "unknown key '1' in the request"),
    (GOOD | {"params": [1]}, "params must be a JSON object, got list"),
    (GOOD | {"params": "greedy"}, "params must be a JSON object, got string"),
    (GOOD | {"params": 0.7}, "params must be a JSON object, got number"),
    (GOOD | {"params": {"greedy": "false"}}, "greedy 'false' is not a boolean"),
    (GOOD | {"params": {"temperature": "0.5"}}, "temperature '0.5' is not a number"),
    (GOOD | {"params": {"temperature": float("nan")}}, "temperature nan is not a finite number"),
    (GOOD | {"params": {"top_p": float("inf")}}, "top_p inf is not a finite number"),
    (GOOD | {"params": {"temperature": 10**400}}, "is not a finite number: accepted is 0 (greedy) or 0.01 to 100"),
    (GOOD | {"params": {"seed": -1}}, "seed -1 is out of range"),
    (GOOD | {"params": {"seed": True}}, "seed True is not an integer"),
    (GOOD | {"params": {"top_q": 1}}, "unknown key 'top_q' in params"),
    (GOOD | {"params": {"stop_sequences": "x"}}, "stop_sequences must be a list, got string"),
    (GOOD | {"params": {"stop_sequences": [["x"]]}}, "stop_sequences[0] must be a string, got list"),
    (GOOD | {"params": {"stop_sequences": [S]}}, "stop_sequences[0] contains a lone surrogate"),
    (GOOD | {"constraint": ["regex"]}, "constraint must be a JSON object, got list"),
    (GOOD | {"constraint": "regex"}, "constraint must be a JSON object, got string"),
    (GOOD | {"constraint": {"enabled": "yes"}}, "constraint enabled 'yes' is not a boolean"),
    (GOOD | {"constraint": {"type": "xml"}}, "constraint type 'xml' is not accepted: use one of multiple_choice"),
    (GOOD | {"constraint": {"schema": 5}}, "constraint schema must be a string, got number"),
    (GOOD | {"constraint": {"schema": S}}, "constraint schema contains a lone surrogate"),
    (GOOD | {"constraint": {"grammar": "x"}}, "unknown key 'grammar' in constraint"),
    (GOOD | {"completion_ids": "1 2"}, "completion_ids must be a list, got string"),
    (GOOD | {"completion_ids": [True]}, "completion_ids[0] = True is not an integer token id"),
    (GOOD | {"completion_ids": [1.5]}, "completion_ids[0] = 1.5 is not an integer token id"),
    (GOOD | {"completion_ids": [[1]]}, "completion_ids[0] = [1] is not an integer token id"),
    (GOOD | {"completion_ids": [-1]}, "completion_ids[0] = -1 is outside the vocabulary"),
    (GOOD | {"completion_ids": [VOCAB]}, f"completion_ids[0] = {VOCAB} is outside the vocabulary: accepted is 0 to"),
    (GOOD | {"completion_ids": [10**30]}, "is outside the vocabulary"),
    (GOOD | {"top_k": True}, "top_k True is not an integer"),
    (GOOD | {"top_k": "5"}, "top_k '5' is not an integer"),
    (GOOD | {"top_k": 1.5}, "top_k 1.5 is not an integer"),
    (GOOD | {"top_k": float("nan")}, "top_k nan is not an integer"),
    (GOOD | {"top_k": 0}, "top_k 0 is out of range"),
    (GOOD | {"top_k": 10**30}, "top_k"),
    (GOOD | {"branch_id": 5}, "branch_id must be a string, got number"),
    (GOOD | {"branch_id": S}, "branch_id contains a lone surrogate"),
    (GOOD | {"branch_id": "b" * 201}, "branch_id is 201 characters long: accepted are at most 200"),
]
MESSAGES_CASES = [
    ({"messages": "hi"}, "messages must be a list, got string"),
    ({"messages": []}, "messages is empty"),
    ({"messages": [None]}, "messages[0] must be a JSON object with role and content, got null"),
    ({"messages": ["hi"]}, "messages[0] must be a JSON object with role and content, got string"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role 'bot' is not accepted: use one of system"),
    ({"messages": [{"role": "user"}]}, "messages[0] has no content"),
    ({"messages": [{"content": "x"}]}, "messages[0] has no role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content must be a string, got number"),
    ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content must be a string, got list"),
    ({"messages": [{"role": "user", "content": S}]}, "messages[0].content contains a lone surrogate"),
    ({"messages": [{"role": "user", "content": "x", "name": "a"}]}, "unknown key 'name' in messages[0]"),
    ({"messages": [{"role": "user", "content": ""}]}, "messages[0].content is empty"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages ends with a system message"),
    ({"messages": [{"role": "user", "content": "x"}], "prompt": "y"}, "give either messages or prompt, not both"),
    ({"messages": [{"role": "user", "content": "x"}], "system_prompt": "y"}, "messages or system_prompt, not both"),
    ({"messages": [{"role": "user", "content": "x"}], "use_chat_template": False}, "messages need the chat template"),
    (
        {"messages": [{"role": "assistant", "content": "x"}, {"role": "system", "content": "y"}, GOOD]},
        "messages[2]",
    ),
]
STEP_CASES = [
    (GOOD | {"force_token_id": "x"}, "force_token_id 'x' is not an integer"),
    (GOOD | {"force_token_id": True}, "force_token_id True is not an integer"),
    (GOOD | {"force_token_id": 1.5}, "force_token_id 1.5 is not an integer"),
    (GOOD | {"force_token_id": [1]}, "force_token_id [1] is not an integer"),
    (GOOD | {"force_token_id": -1}, "force_token_id -1 is out of range"),
    (GOOD | {"force_token_id": VOCAB}, f"force_token_id[0] = {VOCAB} is outside the vocabulary"),
    (GOOD | {"force_text": 5}, "force_text must be a string, got number"),
    (GOOD | {"force_text": ["a"]}, "force_text must be a string, got list"),
    (GOOD | {"force_text": S}, "force_text contains a lone surrogate"),
    (GOOD | {"force_text": ""}, "force_text is empty"),
    (GOOD | {"force_text": "a", "force_token_id": 5}, "give either force_token_id or force_text, not both"),
    (GOOD | {"reset_rng": "yes"}, "reset_rng 'yes' is not a boolean"),
    (GOOD | {"force_txt": "x"}, "unknown key 'force_txt' in the request: accepted are"),
    (GOOD | {"method": "saliency"}, "unknown key 'method' in the request"),
]
ATTRIBUTION_CASES = [
    (GOOD | {"target_token_id": 5, "ig_steps": 0}, "ig_steps 0 is out of range: accepted is an integer from 2 to 256"),
    (GOOD | {"target_token_id": 5, "ig_steps": 1000}, "ig_steps 1000 is out of range"),
    (GOOD | {"target_token_id": 5, "ig_steps": "16"}, "ig_steps '16' is not an integer"),
    (GOOD | {"target_token_id": 5, "ig_steps": True}, "ig_steps True is not an integer"),
    (GOOD | {"target_token_id": 5, "method": "magic"}, "method 'magic' is not accepted: use one of attention"),
    (GOOD | {"target_token_id": 5, "method": 5}, "method 5 is not accepted"),
    (GOOD | {"target_token_id": 5, "aggregation": "max"}, "aggregation 'max' is not accepted: use one of l2, sum"),
    (GOOD | {"target_token_id": 5, "granularity": "sentence"}, "granularity 'sentence' is not accepted: use one of"),
    (GOOD | {"target_token_id": 5, "contrast_token_id": "6"}, "contrast_token_id '6' is not an integer"),
    (GOOD | {"target_token_id": 5, "last_layer_only": "true"}, "last_layer_only 'true' is not a boolean"),
    (GOOD | {"target_index": -1}, "target_index -1 is out of range"),
    (GOOD | {"target_index": "0"}, "target_index '0' is not an integer"),
    (GOOD | {"target_index": True}, "target_index True is not an integer"),
    (GOOD | {"target_index": 3}, "target_index 3 is out of range: the completion is empty"),
    (GOOD | {"target_token_id": VOCAB}, "target_token_id[0] = 49152 is outside the vocabulary"),
    (GOOD | {"target_token_id": "x"}, "target_token_id 'x' is not an integer"),
    (GOOD | {"target_token_id": 5, "target_index": 1}, "target_index 1 is out of range: accepted is 0 to 0"),
    (GOOD, "give target_index (a completion position), target_token_id"),
    (GOOD | {"target_token_id": 5, "force_text": "x"}, "unknown key 'force_text' in the request"),
]


@pytest.fixture(scope="module")
def baseline(embedded):
    STORE.use(embedded)
    return service.preview(GOOD)


def refused(fn, request, words: str, baseline) -> None:
    with pytest.raises(ValueError) as info:
        fn(request)
    message = str(info.value)
    assert words in message
    assert "\n" not in message
    assert service.preview(GOOD) == baseline  # nothing changed


@pytest.mark.parametrize(
    ("request_", "words"),
    [*REQUEST_CASES, *MESSAGES_CASES, (GOOD | {"force_text": "x"}, "unknown key 'force_text' in the request")],
)
def test_preview_refuses(baseline, request_, words):
    refused(service.preview, request_, words, baseline)


@pytest.mark.parametrize(("request_", "words"), REQUEST_CASES + STEP_CASES)
def test_step_refuses(baseline, request_, words):
    refused(service.step, request_, words, baseline)


@pytest.mark.parametrize(("request_", "words"), REQUEST_CASES + ATTRIBUTION_CASES)
def test_attribution_refuses(baseline, request_, words):
    if isinstance(request_, dict) and "target_index" not in request_ and not words.startswith("give target_index"):
        request_ = {"target_token_id": 5} | request_  # a target, so the request's own fault is the one named
    refused(service.attribution, request_, words, baseline)


@pytest.mark.parametrize(
    ("model_id", "words"),
    [
        (123, "must be a string, got number"),
        (None, "is empty"),
        ("  ", "is empty"),
        (["a"], "got list"),
        (S, "surrogate"),
    ],
)
def test_load_model_refuses(baseline, model_id, words):
    refused(service.load_model, model_id, words, baseline)
    assert service.model_status()["state"] == "ready"


@pytest.mark.parametrize(
    ("schema_type", "schema", "words"),
    [
        ("json_schema", '{"$ref": "#"}', "JSON schema"),
        ("cfg", 'start: foo\nfoo: "a" | bar', 'Lark grammar is invalid: line 2, column 6: unknown name: "bar"'),
        ("cfg", 'start: ( "a"', "Lark grammar is invalid: line 1, column 13"),
        ("regex", "(a", "regex '(a' is invalid"),
    ],
)
def test_bad_grammars_are_one_readable_line(baseline, schema_type, schema, words):
    request = GOOD | {"constraint": {"enabled": True, "type": schema_type, "schema": schema}}
    with pytest.raises(ValueError) as info:
        service.preview(request)
    message = str(info.value)
    assert words in message and "\n" not in message and len(message) <= readable.MESSAGE_CHARS
    assert "<state>" not in message and "grammars" not in message and "^" not in message
    assert service.preview(GOOD) == baseline


def test_one_line_keeps_short_messages_and_cuts_dumps():
    assert readable.one_line("a\n  1 | text\n      ^\nb") == "a; b"
    assert readable.one_line("failed: X\n<state>\nTokens: []\n</state>") == "failed: X"
    assert len(readable.one_line("x" * 500 + "\ny")) == readable.MESSAGE_CHARS


def test_integral_floats_and_nulls_are_accepted(baseline):
    """3.0 is an integer (JSON clients differ); null is the default, as if the key were left out."""
    same = GOOD | {"top_k": 3.0, "system_prompt": None, "branch_id": None, "completion_ids": None, "constraint": None}
    assert service.preview(same | {"params": {"greedy": True, "temperature": None, "seed": None}}) == baseline
    step = service.step(GOOD | {"force_token_id": 7042.0, "force_text": None, "reset_rng": False})
    assert step["completion_ids"] == [7042]


def test_public_mode_gives_no_oracle_about_files(monkeypatch, tmp_path, baseline):
    """Whether a file of that name exists on the server never changes the answer."""
    monkeypatch.setattr(service.POLICY, "_settings", service.POLICY.settings)
    service.POLICY.configure(public=True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("exists")
    (tmp_path / "models").mkdir()
    answers = []
    for name in ("README.md", "README-nope.md", "models", "no-models"):
        with pytest.raises(ValueError) as info:
            service.load_model(name)
        answers.append(str(info.value).replace(repr(name), "NAME"))
    assert len(set(answers)) == 1 and "is not offered on this public server" in answers[0]


CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]


def _template_ids(tokenizer, messages: list[dict], **kwargs) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])


def test_messages_are_rendered_with_the_chat_template(baseline, tokenizer):
    out = service.preview({"messages": CONVERSATION, "top_k": 1})
    ids = [t["id"] for t in out["prompt_tokens"]]
    assert ids == _template_ids(tokenizer, CONVERSATION, add_generation_prompt=True)
    # prompt + system_prompt is the same conversation, rendered as before
    same = service.preview({"prompt": "Capital of France?", "system_prompt": "Be brief.", "top_k": 1})
    assert same["prompt_tokens"] == out["prompt_tokens"] and same["dist"] == out["dist"]


def test_a_last_assistant_message_is_continued(baseline, tokenizer):
    conversation = [*CONVERSATION, {"role": "assistant", "content": "The capital of France is"}]
    out = service.step({"messages": conversation, "top_k": 3, "params": {"greedy": True}})
    ids = [t["id"] for t in out["prompt_tokens"]]
    assert ids == _template_ids(tokenizer, conversation, continue_final_message=True)
    assert out["prompt_tokens"][-1]["text"] == " is" and out["completion_text"] == " Paris"


def test_messages_need_a_chat_template(monkeypatch, tiny):
    from backends.model.loaded import LoadedModel
    from decoding.engine import Engine
    from decoding.request import Message, Request

    monkeypatch.setattr(LoadedModel, "has_chat_template", property(lambda self: False))
    engine = Engine(tiny)
    with pytest.raises(ValueError, match="'tiny-random-llama' has no chat template, so it cannot read a conversation"):
        engine.prompt_ids(Request(prompt="", messages=(Message("user", "hi"),)))
    ids, notice = engine.prompt_ids(Request(prompt="hi"))
    assert ids and "no chat template" in notice


def test_huge_and_deep_values_are_refused_in_one_short_line(baseline):
    deep: list = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    cases = [
        (GOOD | {"prompt": deep}, "prompt must be a string, got list [[[[...]]]]"),
        (GOOD | {"completion_ids": [[5] * 100_000]}, "completion_ids[0] = [5, 5, 5, 5, 5, ...] is not an integer"),
        (GOOD | {f"k{i}": 1 for i in range(10_000)}, "unknown keys ['k0', 'k1', 'k10', 'k100', 'k1000', ...]"),
        (GOOD | {"top_k": 10**5000}, "top_k is (a number too large to show) rows; this server allows 1,000"),
        (
            GOOD | {"constraint": {"enabled": True, "type": "json_schema", "schema": "[" * 5000}},
            "the request is nested too deeply to read",
        ),
    ]
    for request, words in cases:
        with pytest.raises(ValueError) as info:
            service.preview(request)
        assert words in str(info.value) and len(str(info.value)) < 400
    assert service.preview(GOOD) == baseline


def test_a_step_can_leave_the_prompt_tokens_out():
    """send_prompt_tokens false: the same step with prompt_tokens empty, every other field as it was."""
    full = service.step(GOOD)
    slim = service.step(GOOD | {"send_prompt_tokens": False})
    assert full["prompt_tokens"] and slim["prompt_tokens"] == []
    assert slim == full | {"prompt_tokens": []}
    assert service.step(GOOD | {"send_prompt_tokens": True}) == full
    with pytest.raises(ValueError, match="send_prompt_tokens 'no' is not a boolean"):
        service.step(GOOD | {"send_prompt_tokens": "no"})
