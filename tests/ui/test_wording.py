"""What the page shows of a refusal: the screen's words, never the API's field names."""

from __future__ import annotations

import re

import pytest

from attribution.registry import REGISTRY, check_foil
from decoding.request import Request
from ui.controls import Controls
from ui.wording import on_screen

API_WORDS = re.compile(r"send null|sampler_order|completion_ids|contrast_token_id|force_text|\bparams\b|use_chat")


def refusal(action) -> str:
    with pytest.raises(ValueError) as caught:
        action()
    return str(caught.value)


def test_a_bad_custom_order_is_told_in_the_words_of_the_screen():
    api = refusal(Controls(sampler_order="custom", custom_order="temperature, nonsense").order)
    assert "sampler_order" in api  # the API keeps naming its field
    shown = on_screen(api)
    assert not API_WORDS.search(shown) and "custom order" in shown and "nonsense" in shown


def test_a_foil_refused_by_a_method_says_to_pick_none_not_to_send_null():
    method = next(m for m in REGISTRY if not m.accepts_foil)
    shown = on_screen(refusal(lambda: check_foil(method)))
    assert not API_WORDS.search(shown) and shown.startswith("the foil does not apply") and "pick none" in shown


def test_an_empty_prompt_asks_for_a_prompt_only():
    shown = on_screen(refusal(lambda: Request.from_dict({"prompt": ""})))
    assert shown == "prompt is empty: type the text the model should continue"


def test_a_knob_is_named_by_its_slider_and_a_typed_stage_name_stays():
    assert on_screen("params.top_p 2 is not accepted") == "Top-p 2 is not accepted"
    assert on_screen("the custom order misses top_p") == "the custom order misses top_p"
    assert on_screen("sampler_order[0] 'x' is not a stage") == "entry 1 of the custom order 'x' is not a stage"


@pytest.mark.parametrize(
    ("api", "shown"),
    [
        (
            "top_p 0.0 is out of range: accepted is 0 < top_p <= 1",
            "Top-p 0.0 is out of range: accepted is 0 < Top-p <= 1",
        ),
        ("dry_allowed_length -5 is out of range: accepted is an integer from 1 to 20", "DRY allowed length -5"),
        ("top_k 0 is out of range: accepted is an integer >= 1", "Rows shown 0 is out of range"),
    ],
)
def test_a_knobs_range_check_names_its_slider(api, shown):
    assert on_screen(api).startswith(shown) and not re.search(r"\b[a-z]+_[a-z_]+\b", on_screen(api))


def test_a_bare_stage_name_of_the_custom_order_stays_as_typed():
    api = refusal(Controls(sampler_order="custom", custom_order="top_p, top_p").order)
    assert "'top_p' twice" in on_screen(api)
