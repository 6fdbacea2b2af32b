"""Constraints on the real embedded model through the service: greedy values that end, checked with Python's re.

The check is independent of llguidance: the text before the end token must fullmatch the pattern, after the
one leading space a ready-made pattern allows.
"""

from __future__ import annotations

import re

import pytest
from outlines import types as outlines_types

from backends.model import STORE
from service import operations as service
from service.public import CONSTRAINT_PRESETS

STEP_BUDGET = 64  # the auto-step guard's default
# Not here: an unbounded pattern (integer) under plain masking goes on as long as the model prefers a digit to
# the end token; the constraint stage only masks (as Outlines and llguidance do), so that is the model's choice.
CASES = [
    ("email", "You can reach me by email at"),
    ("email", "Her email address is"),
    ("email", "For support, write to"),
    ("email", "Contact me at"),
    ("date (YYYY-MM-DD)", "The meeting is on"),
    ("date (YYYY-MM-DD)", "The invoice is dated"),
    ("time (HH:MM:SS)", "The train leaves at"),
]


@pytest.fixture(scope="module", autouse=True)
def model(embedded):
    STORE.use(embedded)


def greedy_value(prompt: str, constraint: dict) -> dict:
    """Greedy steps until the completion finishes or the step budget is spent; the last step's answer."""
    ids: list[int] = []
    for _ in range(STEP_BUDGET):
        answer = service.step(
            {"prompt": prompt, "use_chat_template": False, "completion_ids": ids, "params": {"greedy": True},
             "constraint": constraint}
        )  # fmt: skip
        ids = answer["completion_ids"]
        if answer["finished"]:
            return answer
    return answer


def value_text(answer: dict) -> str:
    """The completion's text without the end-of-sequence token."""
    return "".join(t["text"] for t in answer["completion_tokens"] if not t["special"])


@pytest.mark.parametrize(("name", "prompt"), CASES)
def test_a_ready_made_pattern_finishes_with_a_value_that_matches_it(name, prompt):
    kind, pattern = CONSTRAINT_PRESETS[name]
    answer = greedy_value(prompt, {"enabled": True, "type": kind, "schema": pattern})
    assert answer["finished"], f"{name} after {prompt!r} did not finish: {answer['completion_text']!r}"
    text = value_text(answer)
    assert text.startswith(" "), f"the usual space after the prompt: {text!r}"
    assert re.fullmatch(pattern, text[1:]), (name, text)
    if name == "email":  # the bounded pattern's addresses are addresses to Outlines too
        assert re.fullmatch(outlines_types.email.pattern, text[1:])


def test_options_keep_their_leading_space_and_the_model_picks_its_own_token():
    answer = greedy_value("The capital of France is", {"enabled": True, "type": "multiple_choice",
                                                       "schema": " Paris\n London\n Berlin"})  # fmt: skip
    assert value_text(answer) == " Paris"
    assert answer["finish_reason"] == "constraint_complete"


def test_a_typed_regex_keeps_todays_start_unless_asked():
    # without the space the model's own "␣2024"-like tokens are forbidden: the value starts with a digit
    off = service.constraint_start({"prompt": "The meeting is on", "use_chat_template": False,
                                    "constraint": {"enabled": True, "schema": r"\d{4}"}})  # fmt: skip
    on = service.constraint_start({"prompt": "The meeting is on", "use_chat_template": False,
                                   "constraint": {"enabled": True, "schema": r"\d{4}", "leading_space": True}})  # fmt: skip
    assert not any(t.startswith("␣") for t in off["tokens"])
    assert on["count"] > off["count"] and on["tokens"][0].startswith("␣")


def test_the_allowed_first_tokens_come_from_the_mask_likeliest_first():
    start = service.constraint_start({"prompt": "Is the sky blue? Answer:", "use_chat_template": False,
                                      "constraint": {"enabled": True, "type": "multiple_choice",
                                                     "schema": " Yes\n No"}})  # fmt: skip
    assert set(start["tokens"]) >= {"␣Yes", "␣No"} and start["count"] == len(start["tokens"])
    off = service.constraint_start({"prompt": "Hi", "use_chat_template": False})
    assert off == {"count": 0, "tokens": []}


def test_leading_space_is_for_a_regex_only():
    with pytest.raises(ValueError, match="leading_space true applies to regex constraints only"):
        service.preview({"prompt": "Hi", "use_chat_template": False,
                         "constraint": {"enabled": True, "type": "multiple_choice", "schema": "a", "leading_space": True}})  # fmt: skip
