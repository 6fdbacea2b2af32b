"""Parameter validation: every bad value is a ValueError naming the field and the accepted range."""

from __future__ import annotations

import pytest

from decoding.params import PRESETS, ConstraintSpec, DecodingParams, check_token_ids, check_top_k

VOCAB = 49152

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


@pytest.mark.parametrize(("kw", "greedy"), [({"greedy": True}, True), ({"temperature": 0.0}, True), ({}, False)])
def test_is_greedy(kw, greedy):
    assert DecodingParams(**kw).is_greedy is greedy


def test_presets_are_valid_params():
    assert {"greedy", "balanced", "reliable", "creative"} <= set(PRESETS)
    assert PRESETS["greedy"].params.is_greedy


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
    with pytest.raises(ValueError, match=r"unknown key 'grammar' in constraint: accepted are \['enabled', 'schema'"):
        ConstraintSpec.from_dict({"grammar": "x"})
    spec = ConstraintSpec.from_dict({"enabled": True, "type": "regex", "schema": None})
    assert spec.active and spec.schema == ""
    for bad, words in [
        ({"enabled": "false"}, "constraint enabled 'false' is not a boolean"),
        ({"schema": ["a"]}, "constraint schema must be a string, got list"),
        ({"schema": "\udfff"}, "constraint schema contains a lone surrogate (U+DFFF)"),
        ({"type": 3}, "constraint type 3 is not accepted: use one of multiple_choice, regex"),
        ("regex", "constraint must be a JSON object, got string"),
    ]:
        with pytest.raises(ValueError) as info:
            ConstraintSpec.from_dict(bad)
        assert words in str(info.value)
