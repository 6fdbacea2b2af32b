"""The registry of the sampling stages: it lists every stage of the chain, each parameter's range is what
validation accepts and refuses (tried value by value at both ends), its schema and sliders agree with it, and
a stage added to a registry of its own reaches validation and the chain without touching the default one."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from decoding.sampling import chain
from decoding.sampling import llama_samplers as ls
from decoding.sampling.params import SAMPLER_ORDERS, SAMPLER_STAGES, DecodingParams, params_class
from decoding.sampling.registry import REGISTRY
from decoding.sampling.stage import Param, Registry, Slider, Stage

# Every parameter's range as the API documents it: low, high (None: unbounded), low open, high open.
DOCUMENTED = {
    "temperature": (0.0, 100.0, False, False),
    "top_k": (0, None, False, False),
    "top_p": (0.0, 1.0, True, False),
    "min_p": (0.0, 1.0, False, False),
    "typical_p": (0.0, 1.0, True, False),
    "top_n_sigma": (0.0, 10.0, False, False),
    "epsilon_cutoff": (0.0, 1.0, False, True),
    "eta_cutoff": (0.0, 1.0, False, True),
    "xtc_threshold": (0.0, 1.0, False, False),
    "xtc_probability": (0.0, 1.0, False, False),
    "repetition_penalty": (0.01, 10.0, False, False),
    "presence_penalty": (-2.0, 2.0, False, False),
    "frequency_penalty": (-2.0, 2.0, False, False),
    "dry_multiplier": (0.0, 5.0, False, False),
    "dry_base": (1.0, 4.0, False, False),
    "dry_allowed_length": (1, 20, False, False),
    "dry_penalty_last_n": (-1, None, False, False),
}
VOCAB = 4096
CONTEXT = [5, 17, 300, 4000, 42, 5, 17, 300]
ALL_ON = {
    "temperature": 0.7, "top_k": 200, "top_p": 0.95, "min_p": 0.001, "typical_p": 0.99, "top_n_sigma": 3.0,
    "epsilon_cutoff": 1e-5, "eta_cutoff": 1e-5, "xtc_threshold": 0.02, "xtc_probability": 0.5,
    "repetition_penalty": 1.2, "dry_multiplier": 2.0,
}  # fmt: skip


def refusal(name: str, value: object) -> str | None:
    """The message validation gives for one value of one parameter, None when it is accepted."""
    try:
        DecodingParams.from_dict({name: value})
    except ValueError as exc:
        return str(exc)
    return None


def below(param: Param) -> float:
    return param.low - 1 if param.type is int else math.nextafter(param.low, -math.inf)


def above(param: Param) -> float:
    return param.high + 1 if param.type is int else math.nextafter(param.high, math.inf)


def logits_for(seed: int) -> torch.Tensor:
    logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(seed)) * 2.0
    logits[[4000, 42, 9, 77]] += 8.0
    return logits


def test_the_registry_lists_every_stage_of_the_chain():
    stages = chain.compute(logits_for(0), CONTEXT, [42], DecodingParams(**ALL_ON), xtc_draw=0.25)
    assert set(stages.names) - {"base"} == set(REGISTRY.stage)
    assert stages.names == ("base", "penalties", "dry", *SAMPLER_ORDERS["transformers"])
    assert tuple(name for name in REGISTRY.stage if not REGISTRY.stage[name].fixed) == SAMPLER_STAGES
    assert all(sorted(order) == sorted(SAMPLER_STAGES) for order in SAMPLER_ORDERS.values())
    assert all(stage.reference and stage.params for stage in REGISTRY.stages)


def test_every_registry_parameter_is_a_field_with_its_default():
    defaults = DecodingParams().as_dict()
    for param in REGISTRY.params:
        assert defaults[param.name] == param.default and type(defaults[param.name]) is param.type


def test_the_ranges_are_the_documented_ones():
    assert {p.name: (p.low, p.high, p.low_open, p.high_open) for p in REGISTRY.params} == DOCUMENTED


@pytest.mark.parametrize("param", REGISTRY.params, ids=lambda p: p.name)
def test_validation_accepts_and_refuses_each_range_at_both_ends(param):
    out_of_range = f"{param.name} {{!r}} is out of range: accepted is {param.accepted}"
    low = refusal(param.name, param.low)
    assert (low is None) is not param.low_open and refusal(param.name, below(param)) == out_of_range.format(
        below(param)
    )
    if param.low_open:
        assert low == out_of_range.format(param.low)
        assert refusal(param.name, math.nextafter(param.low, math.inf)) is None
    if param.high is None:
        assert refusal(param.name, 10**15) is None
        return
    high = refusal(param.name, param.high)
    assert (high is None) is not param.high_open and refusal(param.name, above(param)) == out_of_range.format(
        above(param)
    )
    if param.high_open:
        assert high == out_of_range.format(param.high)
        assert refusal(param.name, math.nextafter(param.high, -math.inf)) is None


def test_temperature_refuses_the_gap_below_its_smallest_divisor():
    gap = REGISTRY.param["temperature"].nonzero_low
    assert refusal("temperature", 0.0) is None and refusal("temperature", gap) is None
    for value in (5e-324, math.nextafter(gap, 0.0)):
        assert (
            refusal("temperature", value)
            == f"temperature {value!r} is out of range: accepted is 0 (greedy) or 0.01 to 100"
        )


@pytest.mark.parametrize("stage", REGISTRY.stages, ids=lambda s: s.name)
def test_a_stage_is_off_with_its_parameters_at_their_off_values_and_on_away_from_them(stage):
    off = {p.name: p.off for p in stage.params if p.off is not None}
    assert off, f"{stage.name} has no parameter that turns it off"
    assert not stage.is_on(DecodingParams(**off))
    on = {p.name: p.slider.high if p.slider.high != p.off else p.slider.low for p in stage.params}
    assert stage.is_on(DecodingParams(**on))


def test_the_schema_gives_each_parameter_for_an_api():
    schema = REGISTRY.schema()
    assert [s.name for s in schema] == [p.name for p in REGISTRY.params]
    for entry in schema:
        param = REGISTRY.param[entry.name]
        assert (entry.type, entry.low, entry.high, entry.low_open, entry.high_open) == (
            param.type,
            *DOCUMENTED[entry.name],
        )
        assert entry.default == param.default and entry.accepted == param.accepted
        assert refusal(entry.name, entry.default) is None


@pytest.mark.parametrize("param", REGISTRY.params, ids=lambda p: p.name)
def test_each_slider_lies_within_what_validation_accepts(param):
    slider = param.slider
    assert slider.label and 0 < slider.step <= slider.high - slider.low
    assert refusal(param.name, slider.low) is None and refusal(param.name, slider.high) is None
    assert slider.low <= param.default <= slider.high


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("top_k", 40, 40),
        ("top_k", 0, 0),
        ("top_k", 7.0, 7),
        ("min_p", 0, 0.0),
        ("min_p", 1, 1.0),
        ("typical_p", 1, 1.0),
        ("epsilon_cutoff", 0.0, 0.0),
        ("eta_cutoff", 0.5, 0.5),
    ],
)
def test_ranges_accept_values_and_return_the_knob_type(name, value, expected):
    checked = REGISTRY.param[name].check(value)
    assert checked == expected and type(checked) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("top_k", -1, "an integer >= 0 (0 means off)"),
        ("top_k", 2.5, "an integer >= 0 (0 means off)"),
        ("top_k", True, "an integer >= 0 (0 means off)"),
        ("min_p", 1.5, "0 to 1 (0 means off)"),
        ("min_p", float("nan"), "0 to 1 (0 means off)"),
        ("min_p", "0.1", "0 to 1 (0 means off)"),
        ("typical_p", 0.0, "0 < typical_p <= 1 (1 means off)"),
        ("epsilon_cutoff", 1.0, "0 <= epsilon_cutoff < 1 (0 means off)"),
        ("eta_cutoff", -0.1, "0 <= eta_cutoff < 1 (0 means off)"),
        ("top_n_sigma", -1.0, "0 to 10 (0 means off)"),
        ("xtc_threshold", 1.5, "0 to 1 (above 0.5 it never acts)"),
        ("xtc_probability", -0.5, "0 to 1 (0 means off)"),
        ("dry_multiplier", 6, "0 to 5 (0 means off)"),
        ("dry_base", 0.5, "1 to 4"),
        ("dry_allowed_length", 0, "an integer from 1 to 20"),
        ("dry_allowed_length", 2.5, "an integer from 1 to 20"),
        ("dry_penalty_last_n", -2, "an integer >= -1 (-1 means the whole context, 0 means off)"),
    ],
)
def test_ranges_refuse_values_with_a_one_line_message(name, value, accepted):
    with pytest.raises(ValueError) as err:
        REGISTRY.param[name].check(value)
    message = str(err.value)
    assert message.startswith(f"{name} {value!r} ") and message.endswith(f"accepted is {accepted}")
    assert "\n" not in message


def test_ranges_accept_the_llama_cpp_defaults():
    defaults = {"top_n_sigma": 0, "xtc_threshold": 0.1, "xtc_probability": 0, "dry_multiplier": 0}
    defaults |= {"dry_base": ls.DRY_BASE, "dry_allowed_length": 2, "dry_penalty_last_n": -1}
    assert {name: REGISTRY.param[name].check(value) for name, value in defaults.items()} == defaults


# A stage of a test's own: it lifts token 0's logit by `shift`.
SHIFT = Param("shift", float, 0.0, 1.0, 0.0, 0.0, "0 to 1 (0 means off)", Slider("Shift (0 = off)", 0.1, 0, 1))
LIFT = Stage("lift", (SHIFT,), lambda p: p.shift > 0.0, lambda x, _, p, i: x.index_add(0, torch.tensor([0]),
             torch.tensor([p.shift])), "a test's stage", "moves")  # fmt: skip
EXTENDED = Registry((*REGISTRY.stages, LIFT), {name: (*order, "lift") for name, order in REGISTRY.orders.items()})


def test_a_new_stage_reaches_validation_and_the_chain_without_touching_the_default_registry():
    params = params_class(EXTENDED)
    with pytest.raises(ValueError, match=r"^shift 1.5 is out of range: accepted is 0 to 1 \(0 means off\)$"):
        params(shift=1.5)
    lifted = params.from_dict({"shift": 0.5, "temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0})
    stages = chain.compute(logits_for(1), CONTEXT, [], lifted)
    assert stages.names == ("base", "lift") and lifted.active_samplers == ("lift",)
    plain = chain.compute(logits_for(1), CONTEXT, [], replace(lifted, shift=0.0))
    assert stages.p_final[0] > plain.p_final[0] and plain.names == ("base",)
    custom = params(sampler_order=("lift", *SAMPLER_STAGES), shift=0.5)
    assert custom.active_samplers == ("lift", "temperature", "top_p")
    with pytest.raises(ValueError, match="unknown key 'shift' in params"):
        DecodingParams.from_dict({"shift": 0.5})
    with pytest.raises(ValueError, match="sampler_order\\[0\\] 'lift' is not a sampler stage"):
        DecodingParams(sampler_order=("lift", *SAMPLER_STAGES))
    assert "lift" not in REGISTRY.stage and DecodingParams.registry is REGISTRY


def test_a_registry_refuses_a_named_order_that_misses_a_stage():
    with pytest.raises(ValueError, match="sampler order 'transformers'"):
        Registry((*REGISTRY.stages, LIFT), REGISTRY.orders)
