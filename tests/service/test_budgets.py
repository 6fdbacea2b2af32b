"""Budgets: defaults per mode, one flag and environment variable each, and refusals that name both."""

from __future__ import annotations

import re

import pytest

from decoding.sampling.params import DecodingParams
from service.budgets import LIMITS, LOCAL_BUDGETS, PUBLIC_BUDGETS, Budgets


def test_every_limit_has_a_flag_an_env_variable_and_both_defaults():
    names = [limit.name for limit in LIMITS]
    assert names == list(Budgets.__dataclass_fields__)
    context = LIMITS[0]
    assert (context.flag, context.env) == ("--max-context-tokens", "NEXTTOKEN_MAX_CONTEXT_TOKENS")
    assert "most prompt + completion + forced text" in context.describe()
    assert "(default 2,048 public, the model's local)" in context.describe()
    for limit in LIMITS:
        assert limit.public >= 1 and (limit.local is None or limit.local >= limit.public)


def test_public_defaults_are_strict_and_local_ones_generous():
    assert Budgets.defaults(public=True) == PUBLIC_BUDGETS
    assert PUBLIC_BUDGETS.max_context_tokens == 2048 and LOCAL_BUDGETS.max_context_tokens is None
    assert PUBLIC_BUDGETS.max_rows == 100 and LOCAL_BUDGETS.max_rows == 1000
    assert PUBLIC_BUDGETS.max_attribution_work == 512 * 32
    assert PUBLIC_BUDGETS.max_prompt_chars == 4000


def test_over_budget_names_the_limit_its_flag_and_its_env_variable():
    with pytest.raises(ValueError) as info:
        PUBLIC_BUDGETS.check("max_context_tokens", 2300, "context")
    expected = "context is 2,300 tokens; this server allows 2,048 (--max-context-tokens / NEXTTOKEN_MAX_CONTEXT_TOKENS)"
    assert str(info.value) == expected
    PUBLIC_BUDGETS.check("max_context_tokens", 2048, "context")  # at the limit is fine
    LOCAL_BUDGETS.check("max_context_tokens", 10**9, "context")  # None: only the model's own limit


def test_grouped_checks():
    small = PUBLIC_BUDGETS.with_limits(max_stop_sequences=2, max_stop_chars=3, max_history_turns=2)
    small.check_stops(("a", "abc"))
    with pytest.raises(ValueError, match=r"stop_sequences is 3 stop sequences; this server allows 2 \(--max-stop"):
        small.check_stops(("a", "b", "c"))
    with pytest.raises(ValueError, match=r"stop_sequences\[1\] is 4 characters; this server allows 3"):
        small.check_stops(("a", "abcd"))
    with pytest.raises(ValueError, match=r"messages is 3 messages; this server allows 2 \(--max-history-turns"):
        small.check_conversation(["a", "b", "c"], "messages")
    with pytest.raises(ValueError, match=r"messages text is 16,001 characters; this server allows 16,000"):
        small.check_conversation(["a" * 8000, "b" * 8001], "messages")
    with pytest.raises(ValueError, match=r"attribution work \(600 context tokens x 32 passes\) is 19,200 token-steps"):
        PUBLIC_BUDGETS.check_attribution(600, 32)
    PUBLIC_BUDGETS.check_attribution(512, 32)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "100"])
def test_a_limit_is_a_whole_number_or_none(bad):
    with pytest.raises(ValueError, match="max_rows"):
        PUBLIC_BUDGETS.with_limits(max_rows=bad)
    assert PUBLIC_BUDGETS.with_limits(max_rows=None).max_rows is None


# --- the service holds every request to the budgets, before any work ------------------------------

GOOD = {"prompt": "The capital of France is", "use_chat_template": False, "top_k": 3, "params": {"greedy": True}}


@pytest.fixture
def public(monkeypatch):
    """Public mode with the public budgets; `set(**limits)` changes some of them."""
    from service import operations as service

    monkeypatch.setattr(service.POLICY, "_settings", service.POLICY.settings)

    def configure(**limits):
        service.POLICY.configure(public=True, budgets=PUBLIC_BUDGETS.with_limits(**limits))

    configure()
    return configure


@pytest.fixture
def no_model(monkeypatch):
    from service import operations as service

    class Untouchable:
        def get(self):
            raise AssertionError("the budget should refuse before any model is touched")

    monkeypatch.setattr(service, "STORE", Untouchable())


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (GOOD | {"top_k": 101}, "top_k is 101 rows; this server allows 100 (--max-rows / NEXTTOKEN_MAX_ROWS)"),
        (GOOD | {"prompt": "x" * 4001}, "prompt is 4,001 characters; this server allows 4,000 (--max-prompt-chars"),
        (
            GOOD | {"params": {"stop_sequences": ["a"] * 17}},
            "stop_sequences is 17 stop sequences; this server allows 16",
        ),
        (
            GOOD | {"params": {"stop_sequences": ["a" * 101]}},
            "stop_sequences[0] is 101 characters; this server allows 100",
        ),
        (
            GOOD | {"constraint": {"enabled": True, "type": "regex", "schema": "a" * 20_001}},
            "the regex constraint is 20,001 characters; this server allows 20,000 (--max-grammar-chars",
        ),
        ({"messages": [{"role": "user", "content": "m"}] * 33}, "messages is 33 messages; this server allows 32"),
        ({"messages": [{"role": "user", "content": "m" * 4000}] * 5}, "messages text is 20,000 characters"),
        ({"messages": [{"role": "user", "content": "m" * 4001}]}, "messages[0].content is 4,001 characters"),
        (GOOD | {"completion_ids": [5] * 2049}, "completion is 2,049 tokens; this server allows 2,048"),
    ],
)
def test_public_budgets_refuse_before_the_model_is_touched(public, no_model, request_, words):
    from service import operations as service

    with pytest.raises(ValueError) as info:
        service.preview(request_)
    assert words in str(info.value)


def test_a_disabled_constraint_is_not_counted(public, no_model):
    from service import operations as service

    request = GOOD | {"constraint": {"enabled": False, "type": "regex", "schema": "a" * 20_001}}
    with pytest.raises(AssertionError, match="before any model is touched"):
        service.preview(request)  # got past the budgets to the model


def test_context_budget_counts_prompt_completion_and_appended_tokens(public, embedded):
    from backends.model import STORE
    from service import operations as service

    STORE.use(embedded)
    public(max_context_tokens=10)  # the prompt is 5 tokens
    request = GOOD | {"completion_ids": [5] * 5}
    assert service.preview(request)["completion_ids"] == [5] * 5
    flag = "(--max-context-tokens / NEXTTOKEN_MAX_CONTEXT_TOKENS)"
    with pytest.raises(ValueError, match="context is 11 tokens; this server allows 10 " + re.escape(flag)):
        service.step(request)
    with pytest.raises(ValueError, match="context is 11 tokens"):
        service.step(GOOD | {"completion_ids": [5] * 4, "force_text": " a city"})  # 2 tokens
    with pytest.raises(ValueError, match="context is 11 tokens"):
        service.append_text(GOOD | {"completion_ids": [5] * 4}, " a city")
    assert len(service.step(GOOD | {"completion_ids": [5] * 3, "force_text": " a city"})["completion_ids"]) == 5


def test_attribution_work_budget(public, embedded):
    from backends.model import STORE
    from service import operations as service

    STORE.use(embedded)
    public(max_attribution_work=100)
    request = GOOD | {"target_token_id": 5, "method": "integrated_gradients", "ig_steps": 32}
    with pytest.raises(ValueError, match=r"attribution work \(5 context tokens x 32 passes\) is 160 token-steps"):
        service.attribution(request)
    public(max_context_tokens=4)
    with pytest.raises(ValueError, match="attribution context is 5 tokens; this server allows 4"):
        service.attribution(GOOD | {"target_token_id": 5, "method": "attention"})


@pytest.mark.parametrize(
    ("message", "history", "max_tokens", "words"),
    [
        ("m" * 2001, [], 10, "message is 2,001 characters; this server allows 2,000 (--max-message-chars"),
        ("hi", [{"role": "user", "content": "m"}] * 32, 10, "conversation is 33 messages; this server allows 32"),
        ("hi", [{"role": "user", "content": "m" * 1999}] * 9, 10, "conversation text is 17,993 characters"),
        ("hi", [], 257, "max_tokens is 257 tokens; this server allows 256 (--max-reply-tokens"),
        ("hi", [], 0, "max_tokens 0 is out of range"),
        ("hi", [], "10", "max_tokens '10' is not an integer"),
        ("   ", [], 10, "the message is empty"),
        (5, [], 10, "message must be a string, got number"),
        ("hi", "history", 10, "history must be a list, got string"),
        ("hi", ["hello"], 10, "history[0] must be an object with a content, got string"),
        ("hi", [{"role": "user", "content": "\ud800"}], 10, "history[0].content contains a lone surrogate"),
    ],
)
def test_check_chat(public, no_model, message, history, max_tokens, words):
    from service import operations as service

    with pytest.raises(ValueError) as info:
        service.check_chat(message, history, max_tokens)
    assert words in str(info.value)
    service.check_chat("hi", [{"role": "user", "content": "a", "metadata": None}], 256)  # the UI's own keys are fine


GREEDY = DecodingParams(greedy=True, temperature=0.0)


def test_stream_reply_applies_the_chat_budgets(public, no_model):
    from service import chat

    with pytest.raises(ValueError, match="max_tokens is 300 tokens"):
        next(chat.stream_reply([{"role": "user", "content": "hi"}], 300, GREEDY))
    with pytest.raises(ValueError, match="message is 2,001 characters"):
        next(chat.stream_reply([{"role": "user", "content": "m" * 2001}], 10, GREEDY))


def test_stream_reply_context_budget(public, embedded):
    from backends.model import STORE
    from service import chat

    STORE.use(embedded)
    public(max_context_tokens=40)
    with pytest.raises(ValueError, match=r"conversation \+ reply is \d+ tokens; this server allows 40"):
        next(chat.stream_reply([{"role": "user", "content": "hi"}], 30, GREEDY))
    text, records = list(chat.stream_reply([{"role": "user", "content": "hi"}], 2.0, GREEDY))[-1]
    assert len(records) == 2 and text and records[0]["how"] == "greedy" and records[0]["dist"]["tokens"]
    for bad, words in [("x", "temperature 'x' is not a number"), (True, "temperature True is not a number")]:
        with pytest.raises(ValueError, match=words):
            chat.chat_params(chat.CHAT_PRESET, bad)
    with pytest.raises(ValueError, match="chat preset 'hot' is not accepted"):
        chat.chat_params("hot", 0.5)
    with pytest.raises(ValueError, match="the conversation must end with the user's message"):
        next(chat.stream_reply([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], 2, GREEDY))


def test_long_lists_are_refused_before_they_are_parsed(public, no_model):
    from service import operations as service

    with pytest.raises(ValueError, match="completion is 3,000 tokens; this server allows 2,048"):
        service.preview(GOOD | {"completion_ids": ["not even ids"] * 3000})
    with pytest.raises(ValueError, match="messages is 40 messages; this server allows 32"):
        service.preview({"messages": ["not even messages"] * 40})
