"""Parameter validation: every bad value is a ValueError naming the field and the accepted range."""

from __future__ import annotations

import pytest

from decoding.sampling.params import (
    SAMPLER_ORDERS,
    SAMPLER_STAGES,
    ConstraintSpec,
    DecodingParams,
    check_token_ids,
    check_top_k,
)
from decoding.sampling.presets import PRESETS

VOCAB = 49152
SAMPLER_DEFAULTS = {  # the request's names and defaults, as the API documents them
    "top_k": 0, "min_p": 0, "typical_p": 1, "top_n_sigma": 0, "epsilon_cutoff": 0, "eta_cutoff": 0,
    "xtc_threshold": 0.1, "xtc_probability": 0, "dry_multiplier": 0, "dry_base": 1.75, "dry_allowed_length": 2,
    "dry_penalty_last_n": -1, "dry_sequence_breakers": ["\n", ":", '"', "*"], "sampler_order": "transformers",
}  # fmt: skip

BAD_PARAMS = [
    ("temperature", -0.1, "0 (greedy) or 0.01 to 100"),
    ("temperature", "hot", "0 (greedy) or 0.01 to 100"),
    ("temperature", 1e-300, "0 (greedy) or 0.01 to 100"),
    ("temperature", 0.009, "0 (greedy) or 0.01 to 100"),
    ("top_p", 0, "0 < top_p <= 1"),
    ("top_p", 1.5, "0 < top_p <= 1"),
    ("top_p", float("nan"), "0 < top_p <= 1"),
    ("repetition_penalty", 0, "0.01 to 10"),
    ("repetition_penalty", 1e-300, "0.01 to 10"),
    ("repetition_penalty", 11, "0.01 to 10"),
    ("presence_penalty", -3, "-2 to 2"),
    ("presence_penalty", 3, "-2 to 2"),
    ("frequency_penalty", -3, "-2 to 2"),
    ("frequency_penalty", 3, "-2 to 2"),
    ("seed", -1, "0 to 2**63-1"),
    ("seed", 1.5, "0 to 2**63-1"),
    ("seed", "x", "0 to 2**63-1"),
    ("seed", 2**63, "0 to 2**63-1"),
    ("top_k", -1, "an integer >= 0 (0 means off)"),
    ("top_k", 2.5, "an integer >= 0"),
    ("top_k", True, "an integer >= 0"),
    ("min_p", 1.5, "0 to 1 (0 means off)"),
    ("typical_p", 0, "0 < typical_p <= 1 (1 means off)"),
    ("top_n_sigma", -1, "0 to 10 (0 means off)"),
    ("epsilon_cutoff", 1, "0 <= epsilon_cutoff < 1"),
    ("eta_cutoff", float("nan"), "0 <= eta_cutoff < 1"),
    ("xtc_threshold", 1.5, "0 to 1 (above 0.5 it never acts)"),
    ("xtc_probability", "0.5", "0 to 1 (0 means off)"),
    ("dry_multiplier", 6, "0 to 5 (0 means off)"),
    ("dry_base", 0.5, "1 to 4"),
    ("dry_allowed_length", 0, "an integer from 1 to 20"),
    ("dry_penalty_last_n", -2, "an integer >= -1 (-1 means the whole context, 0 means off)"),
    ("dry_sequence_breakers", "\n", "dry_sequence_breakers must be a list"),
    ("dry_sequence_breakers", [""], "dry_sequence_breakers[0] is empty"),
    ("dry_sequence_breakers", ["x" * 41], "at most 40 bytes each"),
    ("dry_sequence_breakers", ["\ud800"], "dry_sequence_breakers[0] contains a lone surrogate"),
    ("dry_sequence_breakers", [str(i) for i in range(17)], "17 entries: accepted is at most 16"),
    ("sampler_order", "vllm", "sampler_order 'vllm' is not a named order: accepted is 'transformers' or 'llama.cpp'"),
    ("sampler_order", 3, "sampler_order must be 'transformers' or 'llama.cpp', or a list naming each of temperature"),
    ("sampler_order", ["temperature", "top-k"], "sampler_order[1] 'top-k' is not a sampler stage"),
    ("sampler_order", ["top_k", "top_k"], "sampler_order names 'top_k' twice"),
    ("sampler_order", ["xtc", "temperature"], "sampler_order misses top_k, top_p, min_p, typical_p, top_n_sigma,"),
]


@pytest.mark.parametrize(("name", "value", "accepted"), BAD_PARAMS)
def test_bad_param_names_field_and_range(name, value, accepted):
    with pytest.raises(ValueError) as info:
        DecodingParams.from_dict({name: value})
    assert name in str(info.value) and accepted in str(info.value)


def test_unknown_param_keys_are_named_with_the_accepted_ones():
    with pytest.raises(ValueError, match=r"unknown key 'top_q' in params: accepted are .*'top_p'"):
        DecodingParams.from_dict({"top_q": 0.5})


@pytest.mark.parametrize("stops", [5, [""], ["ok", 3], "END", [["a"]], ["\ud800"], {"a": 1}])
def test_bad_stop_sequences_are_refused(stops):
    with pytest.raises(ValueError, match="stop_sequences"):
        DecodingParams.from_dict({"stop_sequences": stops})


def test_from_dict_fills_defaults_and_normalises():
    p = DecodingParams.from_dict({"seed": 7.0, "stop_sequences": ["END"], "greedy": True, "temperature": 1})
    assert p.seed == 7 and isinstance(p.seed, int)
    assert p.stop_sequences == ("END",) and p.greedy
    assert p.temperature == 1.0 and isinstance(p.temperature, float)
    assert p.top_p == DecodingParams().top_p


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"greedy": "false"}, "greedy 'false' is not a boolean"),
        ({"greedy": 1}, "greedy 1 is not a boolean"),
        ({"temperature": True}, "temperature True is not a number"),
        ({"temperature": "0.5"}, "temperature '0.5' is not a number"),
        ({"temperature": float("inf")}, "temperature inf is not a finite number"),
        ({"temperature": 10**400}, "is not a finite number"),
        ({"seed": True}, "seed True is not an integer"),
        ({"seed": float("nan")}, "seed nan is not an integer"),
    ],
)
def test_params_need_exact_types(data, words):
    with pytest.raises(ValueError) as info:
        DecodingParams.from_dict(data)
    assert words in str(info.value)


@pytest.mark.parametrize("data", [[], "greedy", 3, True])
def test_params_must_be_an_object(data):
    with pytest.raises(ValueError, match=r"params must be a JSON object, got (list|string|number|boolean)"):
        DecodingParams.from_dict(data)


def test_null_means_the_default():
    assert DecodingParams.from_dict(None) == DecodingParams()
    assert DecodingParams.from_dict({"temperature": None, "seed": None, "stop_sequences": None}) == DecodingParams()
    assert ConstraintSpec.from_dict(None) == ConstraintSpec()


def test_as_dict_roundtrips():
    p = DecodingParams(temperature=1.2, seed=3, stop_sequences=("a", "b"))
    assert DecodingParams.from_dict(p.as_dict()) == p
    custom = DecodingParams(sampler_order=tuple(reversed(SAMPLER_STAGES)), dry_sequence_breakers=("\n\n",), top_k=4)
    out = custom.as_dict()
    assert out["sampler_order"] == list(reversed(SAMPLER_STAGES)) and out["dry_sequence_breakers"] == ["\n\n"]
    assert DecodingParams.from_dict(out) == custom and custom.stage_order == tuple(reversed(SAMPLER_STAGES))


def test_new_samplers_are_off_by_default_and_take_the_documented_names():
    default = DecodingParams()
    assert default.active_samplers == ("temperature", "top_p") and not default.dry_on
    assert default.sampler_order == "transformers" and default.stage_order == SAMPLER_ORDERS["transformers"]
    assert {k: v for k, v in default.as_dict().items() if k in SAMPLER_DEFAULTS} == SAMPLER_DEFAULTS
    assert DecodingParams.from_dict({"top_k": 5.0, "dry_allowed_length": 3}).top_k == 5  # integral floats: integers


@pytest.mark.parametrize("order", ["transformers", "llama.cpp"])
def test_a_named_order_and_the_same_list_give_the_same_stages(order):
    listed = DecodingParams.from_dict({"sampler_order": list(SAMPLER_ORDERS[order]), "min_p": 0.1, "top_k": 3})
    named = DecodingParams(sampler_order=order, min_p=0.1, top_k=3)
    assert listed.active_samplers == named.active_samplers


@pytest.mark.parametrize(("kw", "greedy"), [({"greedy": True}, True), ({"temperature": 0.0}, True), ({}, False)])
def test_is_greedy(kw, greedy):
    assert DecodingParams(**kw).is_greedy is greedy


def test_presets_are_valid_params():
    assert {"greedy", "balanced", "reliable", "creative"} <= set(PRESETS)
    assert PRESETS["greedy"].params.is_greedy


def test_presets_mirror_common_defaults():
    cpp = PRESETS["llama.cpp default"].params
    assert (cpp.top_k, cpp.top_p, cpp.min_p, cpp.temperature, cpp.repetition_penalty) == (40, 0.95, 0.05, 0.8, 1.0)
    assert cpp.active_samplers == ("top_k", "top_p", "min_p", "temperature")  # llama.cpp's order: temperature last
    creative = PRESETS["min-p creative"].params
    assert (creative.temperature, creative.min_p) == (1.5, 0.1)
    assert creative.active_samplers == ("temperature", "min_p") and not creative.penalties_on
    assert DecodingParams.from_dict(creative.as_dict()) == creative


@pytest.mark.parametrize("top_k", [0, VOCAB + 1, -5, 2.5, "ten"])
def test_bad_top_k_names_field_and_range(top_k):
    with pytest.raises(ValueError) as info:
        check_top_k(top_k, VOCAB)
    assert "top_k" in str(info.value) and f"1 to {VOCAB}" in str(info.value)


def test_top_k_accepts_the_whole_range():
    assert check_top_k(1, VOCAB) == 1 and check_top_k(VOCAB, VOCAB) == VOCAB and check_top_k(5.0, VOCAB) == 5


@pytest.mark.parametrize("bad", ["a", 1.5, None, True])
def test_non_integer_completion_id_names_field_and_range(bad):
    with pytest.raises(ValueError) as info:
        check_token_ids("completion_ids", [1, bad], VOCAB)
    assert "completion_ids[1]" in str(info.value) and f"0 to {VOCAB - 1}" in str(info.value)


@pytest.mark.parametrize("bad", [-1, VOCAB])
def test_out_of_vocabulary_completion_id_names_field_and_range(bad):
    with pytest.raises(ValueError) as info:
        check_token_ids("completion_ids", [bad], VOCAB)
    assert "completion_ids[0]" in str(info.value) and f"0 to {VOCAB - 1}" in str(info.value)


def test_completion_ids_must_be_a_list():
    with pytest.raises(ValueError, match="completion_ids"):
        check_token_ids("completion_ids", "1 2 3", VOCAB)


def test_token_ids_accept_integral_floats():
    assert check_token_ids("completion_ids", [0, 2.0, VOCAB - 1], VOCAB) == (0, 2, VOCAB - 1)


def test_constraint_spec_validation():
    with pytest.raises(ValueError, match=r"constraint type 'xml'.*multiple_choice"):
        ConstraintSpec.from_dict({"type": "xml"})
    with pytest.raises(
        ValueError, match=r"unknown key 'grammar' in constraint: accepted are \['enabled', 'leading_space', 'schema'"
    ):
        ConstraintSpec.from_dict({"grammar": "x"})
    spec = ConstraintSpec.from_dict({"enabled": True, "type": "regex", "schema": None})
    assert spec.active and spec.schema == "" and spec.leading_space is None
    for bad, words in [
        ({"enabled": "false"}, "constraint enabled 'false' is not a boolean"),
        ({"schema": ["a"]}, "constraint schema must be a string, got list"),
        ({"schema": "\udfff"}, "constraint schema contains a lone surrogate (U+DFFF)"),
        ({"type": 3}, "constraint type 3 is not accepted: use one of multiple_choice, regex"),
        ({"leading_space": "yes"}, "constraint leading_space 'yes' is not a boolean"),
        ({"type": "cfg", "leading_space": True}, "constraint leading_space true applies to regex constraints only"),
        ("regex", "constraint must be a JSON object, got string"),
    ]:
        with pytest.raises(ValueError) as info:
            ConstraintSpec.from_dict(bad)
        assert words in str(info.value)
