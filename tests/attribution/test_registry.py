"""The registry of attribution methods: every entry runs, and everything that lists methods lists its entries.

Each method runs through the dispatch on the tiny random Llama; validation, the service's request parsing
and the UI's menu accept exactly the registry's names; a foil is refused exactly where an entry says so;
the `signed` a result carries is the entry's, and unsigned scores are never negative.
"""

from __future__ import annotations

import json

import pytest

from attribution import AGGREGATIONS, METHODS, PARAMETERS, attribute, registry, schema
from attribution.validation import validate
from service.contract import AttributionRequest, own_keys
from service.targets import AttributionSpec
from ui.draw import heatmap

TARGET = 42  # a token id to attribute; the context is the `ids` fixture (conftest.py)
FOIL = 7
RUNS = [(m, a) for m in METHODS for a in AGGREGATIONS]  # every method under every aggregation


@pytest.fixture(scope="module")
def results(tiny, ids) -> dict[tuple[str, str], object]:
    """Every method under every aggregation, once for the module (a few steps keep integrated gradients quick)."""
    return {(m, a): attribute(tiny, ids, TARGET, m, aggregation=a, ig_steps=4, use_cache=False) for m, a in RUNS}


@pytest.mark.parametrize(("method", "aggregation"), RUNS)
def test_every_method_runs_through_the_dispatch(results, ids, method, aggregation):
    result = results[method, aggregation]
    assert result.method == method
    if not METHODS[method].token_scores:  # parts of the model, not tokens: no scores, nothing to delete
        assert result.scores == result.normalized == ()
        assert result.faithfulness is None and result.components is not None
        return
    assert len(result.scores) == len(result.normalized) == len(ids)
    assert result.faithfulness is not None


@pytest.mark.parametrize(("method", "aggregation"), RUNS)
def test_signedness_is_the_entry_s_and_unsigned_scores_are_never_negative(results, method, aggregation):
    result = results[method, aggregation]
    assert result.signed == METHODS[method].signed_for(aggregation)
    if not result.signed:
        assert min(result.scores) >= 0
        assert min(result.normalized) >= 0


def test_signed_results_do_show_both_directions(results):
    signed = [r for r in results.values() if r.signed and r.scores]
    assert signed
    assert any(min(r.scores) < 0 < max(r.scores) for r in signed)


def test_aggregations_say_the_signedness_of_gradient_methods_only():
    for entry in METHODS.values():
        if entry.aggregations:
            assert {a: entry.signed_for(a) for a in entry.aggregations} == {"l2": False, "sum": True}
        else:
            assert len({entry.signed_for(a) for a in AGGREGATIONS}) == 1


@pytest.mark.parametrize("method", METHODS)
def test_validation_accepts_every_registry_method(tiny, ids, method):
    validate(tiny, ids, TARGET, method, registry.DEFAULT_AGGREGATION)


@pytest.mark.parametrize("method", ["lime", "Attention", "", None, 3])
def test_validation_refuses_other_methods_listing_exactly_the_registry_s(tiny, ids, method):
    with pytest.raises(ValueError, match="is not accepted: use one of ") as raised:
        validate(tiny, ids, TARGET, method, registry.DEFAULT_AGGREGATION)
    assert str(raised.value).endswith(f"use one of {', '.join(METHODS)}")


def test_the_service_parses_exactly_the_registry_s_methods_and_parameters():
    for method in METHODS:
        assert AttributionSpec.from_dict({"target_index": 0, "method": method}).method == method
    with pytest.raises(ValueError, match=f"method 'lime' is not accepted: use one of {', '.join(METHODS)}$"):
        AttributionSpec.from_dict({"target_index": 0, "method": "lime"})
    assert set(PARAMETERS) <= set(own_keys(AttributionRequest))
    defaults = AttributionSpec.from_dict({"target_index": 0}).parameters
    assert defaults == {name: p.default for name, p in PARAMETERS.items()}


def test_the_ui_menu_offers_exactly_the_registry_s_token_scoring_methods():
    shown = [m for m in METHODS.values() if m.token_scores]
    assert [name for _, name in heatmap.METHOD_CHOICES] == [m.name for m in shown]
    assert [label for label, _ in heatmap.METHOD_CHOICES] == [m.label for m in shown]
    assert "direct_logit" in METHODS and "direct_logit" not in dict(map(reversed, heatmap.METHOD_CHOICES))
    assert set(heatmap.HOVER_METHODS) == {m.name for m in METHODS.values() if m.hover}


@pytest.mark.parametrize("method", METHODS)
def test_a_foil_is_refused_exactly_where_the_entry_takes_none(tiny, ids, method):
    if METHODS[method].accepts_foil:
        result = attribute(tiny, ids, TARGET, method, contrast_token_id=FOIL, ig_steps=4, use_cache=False)
        assert result.contrast_token_id == FOIL
        return
    accepting = [m for m in METHODS if METHODS[m].accepts_foil]
    with pytest.raises(ValueError, match=f"^contrast_token_id does not apply to {method} ") as raised:
        attribute(tiny, ids, TARGET, method, contrast_token_id=FOIL)
    assert f"{', '.join(accepting[:-1])} or {accepting[-1]}, or send null" in str(raised.value)


def test_the_recorded_foil_message_for_attention():
    with pytest.raises(ValueError) as raised:
        registry.check_foil(METHODS["attention"])
    assert str(raised.value) == (
        "contrast_token_id does not apply to attention (attention does not depend on the target): choose saliency,"
        " input_x_gradient, integrated_gradients, ablation or direct_logit, or send null"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ig_steps", 1, "ig_steps 1 is out of range: accepted is an integer from 2 to 256"),
        ("ig_steps", 257, "ig_steps 257 is out of range: accepted is an integer from 2 to 256"),
        ("last_layer_only", "yes", "last_layer_only 'yes' is not a boolean"),
    ],
)
def test_parameters_are_checked_in_the_request_dialect(name, value, message):
    with pytest.raises(ValueError, match=message):
        registry.read_parameters({name: value})


def test_the_schema_is_plain_json_with_names_aggregations_and_ranges():
    data = json.loads(json.dumps(schema()))
    assert list(data["methods"]) == list(METHODS)
    assert list(data["aggregations"]) == list(AGGREGATIONS)
    assert data["default_method"] in data["methods"]
    assert data["default_aggregation"] in data["aggregations"]
    steps = data["parameters"]["ig_steps"]
    assert (steps["type"], steps["minimum"], steps["maximum"], steps["default"]) == ("integer", 2, 256, 16)
    assert data["parameters"]["last_layer_only"]["type"] == "boolean"
    assert data["methods"]["attention"]["accepts_foil"] is False
    assert data["methods"]["integrated_gradients"]["parameters"] == ["ig_steps"]
    assert data["methods"]["saliency"]["signed"] == {"l2": False, "sum": True}
