"""The stage chain with every sampler: each knob in either named order and a custom one equals an independent
composition of the reference samplers (transformers' warpers; llama.cpp's samplers as `llama_samplers` ports
them); the orders differ where they should; the constraint stays exact; the API shows the stages with counts."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from decoding.sampling import chain
from decoding.sampling import llama_samplers as ls
from decoding.sampling.params import SAMPLER_ORDERS, SAMPLER_STAGES, DecodingParams

VOCAB = 49152
# The context ends with a repeat of 5 17 300, so DRY lowers 4000 (the token that followed it last time).
CONTEXT = [5, 17, 300, 4000, 42, 5, 17, 300]
COMPLETION = [42, 5, 17, 300]
CUSTOM = tuple(reversed(SAMPLER_STAGES))
ORDERS = ("transformers", "llama.cpp", CUSTOM)
XTC_DRAW = 0.25
# Each knob set so that it removes tokens (or, for DRY, moves logits) on these logits.
KNOBS = {
    "top_k": {"top_k": 30},
    "top_p": {"top_p": 0.6},
    "min_p": {"min_p": 0.02},
    "typical_p": {"typical_p": 0.5},
    "top_n_sigma": {"top_n_sigma": 1.0},
    "epsilon_cutoff": {"epsilon_cutoff": 3e-4},
    "eta_cutoff": {"eta_cutoff": 3e-4},
    "xtc": {"xtc_threshold": 0.02, "xtc_probability": 0.5},
    "dry": {"dry_multiplier": 2.0},
}
ALL_ON = {name: value for knob in KNOBS.values() for name, value in knob.items()} | {"top_k": 200, "top_p": 0.95}


def logits_for(seed: int) -> torch.Tensor:
    logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(seed)) * 2.0
    logits[[4000, 42, 9, 77]] += 14.0  # a few likely tokens, so that XTC and the cutoffs have something to cut
    return logits


def random_valid(seed: int, fraction: float) -> torch.Tensor:
    return torch.rand(VOCAB, generator=torch.Generator().manual_seed(seed + 99)) < fraction


def params(order, **kw) -> DecodingParams:
    base = {"temperature": 0.7, "top_p": 1.0, "repetition_penalty": 1.2, "presence_penalty": 0.3}
    return DecodingParams(**{**base, "sampler_order": order, **kw})


def compute(logits, p, valid=None):
    return chain.compute(logits, CONTEXT, COMPLETION, p, valid, xtc_draw=XTC_DRAW)


REFERENCE = {  # each on a [1, vocab] batch, as transformers' warpers take it; each skipped when off
    "temperature": lambda s, p: TemperatureLogitsWarper(p.temperature)(None, s) if p.temperature != 1.0 else s,
    "top_k": lambda s, p: TopKLogitsWarper(p.top_k)(None, s) if p.top_k else s,
    "top_p": lambda s, p: TopPLogitsWarper(p.top_p)(None, s) if p.top_p < 1.0 else s,
    "min_p": lambda s, p: MinPLogitsWarper(p.min_p)(None, s) if p.min_p else s,
    "typical_p": lambda s, p: TypicalLogitsWarper(p.typical_p)(None, s) if p.typical_p < 1.0 else s,
    "epsilon_cutoff": lambda s, p: EpsilonLogitsWarper(p.epsilon_cutoff)(None, s) if p.epsilon_cutoff else s,
    "eta_cutoff": lambda s, p: EtaLogitsWarper(p.eta_cutoff, device="cpu")(None, s) if p.eta_cutoff else s,
    "top_n_sigma": lambda s, p: ls.top_n_sigma(s[0], p.top_n_sigma)[None],
    "xtc": lambda s, p: ls.xtc(s[0], p.xtc_threshold, p.xtc_probability, XTC_DRAW)[None],
}


def reference(logits: torch.Tensor, p: DecodingParams, valid: torch.Tensor | None = None) -> torch.Tensor:
    """p_final written out independently: penalties, DRY, mask, then the reference samplers in the order."""
    scores = RepetitionPenaltyLogitsProcessor(p.repetition_penalty)(torch.tensor([CONTEXT]), logits[None].clone())
    for token in set(COMPLETION):
        scores[0, token] -= COMPLETION.count(token) * p.frequency_penalty + p.presence_penalty
    scores = ls.dry(scores[0], CONTEXT, p.dry_multiplier, p.dry_base, p.dry_allowed_length, -1)[None]
    if valid is not None:
        scores = scores.masked_fill(~valid, float("-inf"))
    for name in SAMPLER_ORDERS.get(p.sampler_order, p.sampler_order):
        scores = REFERENCE[name](scores, p)
    return torch.softmax(scores[0], -1)


def assert_same_final(stages: chain.Stages, expected: torch.Tensor) -> None:
    assert torch.equal(stages.p_final > 0, expected > 0)  # the same tokens kept, exactly
    torch.testing.assert_close(stages.p_final, expected, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("order", ORDERS, ids=["transformers", "llama.cpp", "custom"])
@pytest.mark.parametrize("knob", list(KNOBS))
def test_each_knob_changes_p_final_exactly_as_its_reference(knob, order):
    for seed in range(3):
        logits = logits_for(seed)
        p = params(order, **KNOBS[knob])
        stages = compute(logits, p)
        assert_same_final(stages, reference(logits, p))
        assert knob in stages.names
        off = compute(logits, params(order))
        assert knob not in off.names and not torch.equal(stages.p_final, off.p_final)  # the knob did something


@pytest.mark.parametrize("order", ORDERS, ids=["transformers", "llama.cpp", "custom"])
def test_every_knob_at_once_equals_the_reference_composition(order):
    for seed in range(3):
        logits = logits_for(seed)
        p = params(order, **ALL_ON)
        stages = compute(logits, p)
        assert_same_final(stages, reference(logits, p))
        expected = ("base", "penalties", "dry", *SAMPLER_ORDERS.get(order, order))
        assert stages.names == expected


def test_the_named_orders_differ_where_temperature_meets_min_p():
    """Temperature 2 before min-p flattens the distribution first, so min-p keeps more than after it."""
    logits = logits_for(4)
    found = {}
    for order in ("transformers", "llama.cpp"):
        p = params(order, temperature=2.0, min_p=0.1)
        found[order] = compute(logits, p)
        assert_same_final(found[order], reference(logits, p))
    hf, cpp = found["transformers"], found["llama.cpp"]
    assert hf.names == ("base", "penalties", "temperature", "min_p")
    assert cpp.names == ("base", "penalties", "min_p", "temperature")
    assert hf.counts[-1] > cpp.counts[-1] > 0
    assert bool((cpp.kept <= hf.kept).all())  # min-p's bar only moves: the colder cut is inside the hotter one


def test_the_named_orders_match_their_engines():
    warpers = ("temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")
    assert SAMPLER_ORDERS["transformers"] == (*warpers, "top_n_sigma", "xtc")  # the two it lacks go last
    llama_chain = ("top_n_sigma", "top_k", "typical_p", "top_p", "min_p", "xtc", "temperature")
    cpp = SAMPLER_ORDERS["llama.cpp"]
    assert tuple(name for name in cpp if name in llama_chain) == llama_chain
    assert sorted(cpp) == sorted(SAMPLER_STAGES) == sorted(SAMPLER_ORDERS["transformers"])


@pytest.mark.parametrize("greedy", [False, True])
def test_under_a_constraint_no_forbidden_token_is_ever_kept(greedy):
    """Random masks, sparse to dense, many seeds, every knob on, every order: p_final stays on valid tokens."""
    for seed in range(24):
        logits = logits_for(seed)
        valid = random_valid(seed, [0.0005, 0.01, 0.2, 0.7][seed % 4])
        if seed % 6 == 5:  # a single valid token, far down the ranking
            valid = torch.zeros(VOCAB, dtype=torch.bool)
            valid[int(torch.argmin(logits))] = True
        for order in ORDERS:
            stages = compute(logits, params(order, greedy=greedy, **ALL_ON), valid)
            assert float(stages.p_final[~valid].abs().max()) == 0.0, (seed, order)
            assert not bool((stages.kept & ~valid).any())
            assert int(stages.kept.sum()) >= 1 and stages.counts[-1] == int(stages.kept.sum())
            assert math.isclose(float(stages.p_final.sum()), 1.0, rel_tol=1e-5)
            assert bool(valid[stages.argmax()])


def test_stage_counts_shrink_and_removed_by_names_the_first_stage_that_removed_each_token():
    logits = logits_for(7)
    valid = random_valid(7, 0.6)
    stages = compute(logits, params("llama.cpp", **ALL_ON), valid)
    counts = stages.counts
    assert counts[0] == VOCAB and list(counts) == sorted(counts, reverse=True)
    every = torch.arange(VOCAB)
    removed_by = stages.removed_by(every)
    for i, stage in enumerate(stages.chain):
        first = sum(1 for name in removed_by if name == stage.name)
        assert first == (counts[i - 1] - counts[i] if i else 0), stage.name
    assert sum(name is None for name in removed_by) == counts[-1]


def test_tokens_a_model_gives_minus_infinity_are_never_in_play():
    logits = logits_for(11)
    logits[:100] = float("-inf")  # e.g. a padded vocabulary
    valid = random_valid(11, 0.5)
    for p in (params("transformers"), params("llama.cpp", **ALL_ON)):
        for stages in (compute(logits, p), compute(logits, p, valid)):
            assert stages.counts[0] == VOCAB - 100 and not bool(stages.kept[:100].any())
            assert stages.removed_by(torch.arange(3)) == ["base"] * 3  # the model itself removed them
            assert stages.counts[-1] == int(stages.kept.sum()) >= 1


def test_xtc_acts_only_when_its_draw_is_within_its_probability():
    logits = logits_for(8)
    p = params("transformers", xtc_threshold=0.02, xtc_probability=0.5)
    acted = chain.compute(logits, CONTEXT, COMPLETION, p, xtc_draw=0.5)
    idle = chain.compute(logits, CONTEXT, COMPLETION, p, xtc_draw=0.51)
    assert acted.names == idle.names == ("base", "penalties", "temperature", "xtc")
    assert acted.counts[-1] < VOCAB and idle.counts[-1] == VOCAB
    assert idle.probs["xtc"] is idle.probs["temperature"]  # on, but nothing removed at this position


def test_greedy_takes_the_argmax_of_what_the_samplers_left():
    """XTC removes the top choices, so greedy after it picks the most likely of the rest (as llama.cpp does)."""
    logits = logits_for(9)
    stages = compute(logits, params("llama.cpp", greedy=True, xtc_threshold=0.02, xtc_probability=1.0))
    assert stages.names == ("base", "penalties", "xtc", "greedy")
    before_xtc = stages.probs["penalties"]
    assert stages.argmax() != int(torch.argmax(before_xtc))
    assert stages.argmax() == int(torch.argmax(stages.probs["xtc"])) and stages.counts[-1] == 1


def test_final_log_probs_redo_dry_and_temperature_in_float64():
    logits = logits_for(10)
    for order in ORDERS:
        p = params(order, **ALL_ON)
        stages = compute(logits, p)
        log_final = chain.final_log_probs(logits, CONTEXT, COMPLETION, p, stages.kept)
        assert log_final.dtype == torch.float64
        torch.testing.assert_close(log_final.exp(), stages.p_final.double(), atol=1e-7, rtol=1e-5)


# --- through the engine and the API ------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny):
    from backends.prefix_cache import PrefixCache
    from decoding.engine import Engine

    return Engine(tiny, PrefixCache())


def xtc_request(engine, seed, branch="main", **params):
    data = {"branch_id": branch, "prompt": "x", "params": {"seed": seed, "xtc_probability": 0.5, **params}}
    return engine.request(data)


def test_seeded_xtc_draw_is_a_pure_function_of_seed_branch_and_position(engine):
    from decoding.sampling.draws import draw_uniform

    draw = engine.xtc_draw(xtc_request(engine, 1), 3)
    assert draw == engine.xtc_draw(xtc_request(engine, 1), 3)
    others = {
        engine.xtc_draw(xtc_request(engine, 2), 3),
        engine.xtc_draw(xtc_request(engine, 1, "other"), 3),
        engine.xtc_draw(xtc_request(engine, 1), 4),
    }
    assert draw not in others and len(others) == 3 and 0.0 <= draw < 1.0
    assert draw != draw_uniform(1, "main", 3)  # its own stream: turning XTC on does not move the sampling draws
    assert engine.xtc_draw(xtc_request(engine, 1, xtc_probability=0.0), 3) == 0.0  # off: no draw


def test_engine_gives_the_chain_its_xtc_draw_and_its_dry_breakers(engine):
    params = {"seed": 4, "xtc_threshold": 2e-5, "xtc_probability": 0.5, "dry_multiplier": 1.0, "temperature": 1.0}
    data = {"prompt": "one: two: one: two: one:", "use_chat_template": False, "top_k": 5, "params": params}
    acted = set()
    for position in range(4):
        req = engine.request({**data, "completion_ids": [28, 1, 28][:position]})
        prompt, _ = engine.prompt_ids(req)
        ids = (*prompt, *req.completion_ids)
        breakers = engine.breakers(req.params)
        assert engine.breakers(req.params) is breakers  # the vocabulary is scanned once per breaker list
        assert breakers[engine.loaded.tokenizer.convert_tokens_to_ids(":")] == ((),)
        stages = engine.stages(req, prompt, req.completion_ids)
        logits = engine.cache.logits(engine.loaded, ids)[0]
        expected = chain.compute(
            logits, ids, req.completion_ids, req.params, breakers=breakers, xtc_draw=engine.xtc_draw(req, position)
        )
        assert stages.names == ("base", "penalties", "dry", "top_p", "xtc")
        assert torch.equal(stages.p_final, expected.p_final)
        acted.add(stages.counts[-1] < stages.counts[-2])
    assert acted == {True, False}  # the draw decided: XTC acted at some positions and not at others


def test_api_preview_shows_the_stages_in_order_with_their_counts(embedded):
    from backends.model import STORE
    from decoding.sampling.presets import PRESETS
    from service import operations as service

    STORE.use(embedded)
    params = PRESETS["llama.cpp default"].params.as_dict() | {"dry_multiplier": 0.8, "xtc_probability": 1.0}
    request = {"prompt": "The capital of France is", "use_chat_template": False, "top_k": 8, "params": params}
    dist = service.preview(request)["dist"]
    assert dist["stages"] == ["base", "dry", "top_k", "top_p", "min_p", "xtc", "temperature"]
    assert list(dist["stage_counts"]) == dist["stages"]
    counts = list(dist["stage_counts"].values())
    assert counts[0] == VOCAB and counts == sorted(counts, reverse=True) and counts[2] == 40
    assert dist["kept_token_count"] == counts[-1] >= 1
    for row in dist["tokens"]:
        assert list(row["stages"]) == dist["stages"]
        assert row["removed_by"] in (None, *dist["stages"]) and (row["removed_by"] is None) == (row["p_final"] > 0)
    with pytest.raises(ValueError, match=r"^sampler_order\[1\] 'top-k' is not a sampler stage: accepted is"):
        service.preview(request | {"params": {"sampler_order": ["temperature", "top-k"]}})
