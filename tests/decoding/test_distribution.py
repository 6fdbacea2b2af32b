"""The per-stage distribution (base, penalties, constraint, temperature, top-p or greedy) and its display summary.

The other samplers, DRY and the orders are tested in test_chain.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopPLogitsWarper

from decoding import distribution as dist_mod
from decoding.sampling.params import DecodingParams
from decoding.tokens import TokenView

VOCAB = 49152
CONTEXT = [5, 17, 17, 300, 4000]
COMPLETION = [17, 300, 300]


def logits_for(seed: int, scale: float = 3.0) -> torch.Tensor:
    return torch.randn(VOCAB, generator=torch.Generator().manual_seed(seed)) * scale


def random_valid(seed: int, fraction: float = 0.5) -> torch.Tensor:
    return torch.rand(VOCAB, generator=torch.Generator().manual_seed(seed + 99)) < fraction


def params(**kw) -> DecodingParams:
    base = {"temperature": 0.8, "top_p": 0.9, "repetition_penalty": 1.2, "presence_penalty": 0.3}
    return DecodingParams(**{**base, **kw})


def run(seed=0, valid=None, **kw) -> dist_mod.Stages:
    return dist_mod.compute(logits_for(seed), CONTEXT, COMPLETION, params(**kw), valid)


@pytest.fixture(scope="module")
def view(tokenizer) -> TokenView:
    return TokenView(tokenizer)


def hf_pipeline(logits: torch.Tensor, p: DecodingParams, valid: torch.Tensor | None) -> torch.Tensor:
    """The same stages through transformers' processors (plus the OpenAI penalties written out)."""
    scores = RepetitionPenaltyLogitsProcessor(p.repetition_penalty)(torch.tensor([CONTEXT]), logits[None].clone())
    for token in set(COMPLETION):
        scores[0, token] -= COMPLETION.count(token) * p.frequency_penalty + p.presence_penalty
    scores = TemperatureLogitsWarper(p.temperature)(None, scores)
    if valid is not None:
        scores = scores.masked_fill(~valid, float("-inf"))
    scores = TopPLogitsWarper(p.top_p)(None, scores)
    return torch.softmax(scores[0], -1)


SAMPLING_STAGES = ("base", "penalties", "temperature", "top_p")
CONSTRAINED_STAGES = ("base", "penalties", "constraint", "temperature", "top_p")
GREEDY_STAGES = ("base", "penalties", "constraint", "greedy")  # greedy turns temperature off


def test_stage_names_in_pipeline_order():
    assert run().names == SAMPLING_STAGES
    assert list(run().probs) == list(SAMPLING_STAGES)
    assert run(valid=random_valid(0)).names == CONSTRAINED_STAGES
    assert run(valid=random_valid(0), greedy=True, top_p=1.0).names == GREEDY_STAGES


def test_knobs_that_are_off_add_no_stage():
    plain = DecodingParams(temperature=1.0, top_p=1.0, repetition_penalty=1.0)
    stages = dist_mod.compute(logits_for(1), CONTEXT, COMPLETION, plain)
    assert stages.names == ("base",) and stages.counts == (VOCAB,)
    assert torch.equal(stages.p_final, stages.p_base) and bool(stages.kept.all())


def test_p_base_is_softmax_of_raw_logits():
    torch.testing.assert_close(run(3).p_base, torch.softmax(logits_for(3), -1))


@pytest.mark.parametrize("with_mask", [False, True])
def test_p_final_matches_transformers_processor_chain(with_mask):
    for seed in range(5):
        valid = random_valid(seed) if with_mask else None
        p = params(frequency_penalty=0.4)
        stages = dist_mod.compute(logits_for(seed), CONTEXT, COMPLETION, p, valid)
        torch.testing.assert_close(stages.p_final, hf_pipeline(logits_for(seed), p, valid))


def test_p_final_sums_to_one_over_kept_and_is_zero_elsewhere():
    for seed in range(5):
        stages = run(seed, valid=random_valid(seed), top_p=0.7)
        assert math.isclose(float(stages.p_final[stages.kept].sum()), 1.0, rel_tol=1e-5)
        assert float(stages.p_final[~stages.kept].abs().max()) == 0.0


def test_kept_is_nucleus_of_the_masked_distribution_intersected_with_valid():
    for seed in range(5):
        valid = random_valid(seed, 0.3)
        stages = run(seed, valid=valid)
        expected = hf_pipeline(logits_for(seed), params(), valid) > 0
        assert torch.equal(stages.kept, expected)
        assert not (stages.kept & ~valid).any()
        assert torch.equal(stages.valid, valid)


def test_constraint_stage_is_zero_on_invalid_tokens():
    valid = random_valid(1)
    stages = run(1, valid=valid)
    assert float(stages.probs["constraint"][~valid].max()) == 0.0
    assert float(stages.probs["temperature"][~valid].max()) == 0.0
    assert float(stages.shown[~valid].min()) > 0.0  # the rows are ranked before the mask: invalid ones stay visible


def test_all_invalid_mask_raises_value_error():
    with pytest.raises(ValueError, match="no candidate is valid"):
        run(0, valid=torch.zeros(VOCAB, dtype=torch.bool))


@pytest.mark.parametrize("kw", [{"greedy": True}, {"temperature": 0.0}])
def test_greedy_gives_one_hot_p_final_at_penalised_argmax(kw):
    stages = run(2, **kw)
    penalised = stages.probs["penalties"]
    assert stages.greedy
    assert int(stages.kept.sum()) == 1
    assert float(stages.p_final.max()) == 1.0 and float(stages.p_final.sum()) == 1.0
    assert stages.argmax() == int(torch.argmax(penalised))


def test_penalties_apply_before_temperature():
    stages = run(4, temperature=2.0)
    logits = logits_for(4)
    penalised = RepetitionPenaltyLogitsProcessor(1.2)(torch.tensor([CONTEXT]), logits[None].clone())[0]
    penalised[sorted(set(COMPLETION))] -= 0.3  # presence penalty
    torch.testing.assert_close(stages.probs["penalties"], torch.softmax(penalised, -1))
    torch.testing.assert_close(stages.probs["temperature"], torch.softmax(penalised / 2.0, -1))
    assert stages.shown is stages.probs["penalties"]


def test_compute_leaves_logits_unmodified():
    logits = logits_for(5)
    before = logits.clone()
    dist_mod.compute(logits, CONTEXT, COMPLETION, params(frequency_penalty=1.0), random_valid(5))
    assert torch.equal(logits, before)


def test_display_rows_are_top_k_of_pre_nucleus_distribution(view):
    stages = run(6, top_p=0.05, temperature=1.5)
    summary = dist_mod.summarize(stages, view, 12)
    ids = [row.id for row in summary.tokens]
    assert set(ids) == set(torch.topk(stages.shown, 12).indices.tolist())
    assert any(not row.kept for row in summary.tokens)
    assert all(row.p_final == 0.0 for row in summary.tokens if not row.kept)


def test_display_rows_list_kept_tokens_first_by_final_probability(view):
    summary = dist_mod.summarize(run(7, top_p=0.1, temperature=1.5), view, 10)
    finals = [row.p_final for row in summary.tokens]
    assert finals == sorted(finals, reverse=True)


def test_display_rows_carry_every_stage_and_token_text(view):
    stages = run(8)
    row = dist_mod.summarize(stages, view, 5).tokens[0]
    assert list(row.stages) == list(stages.names) == list(SAMPLING_STAGES)
    assert row.stages["base"] == pytest.approx(float(stages.p_base[row.id]))
    assert row.text == view.pill(row.id).text and row.display == view.pill(row.id).display


def test_summary_masses_counts_and_entropies(view):
    valid = random_valid(9)
    stages = run(9, valid=valid)
    summary = dist_mod.summarize(stages, view, 10)
    assert summary.other_p_base == pytest.approx(1.0 - sum(r.p_base for r in summary.tokens), abs=1e-6)
    assert summary.other_p_final == pytest.approx(1.0 - sum(r.p_final for r in summary.tokens), abs=1e-6)
    assert summary.kept_token_count == int(stages.kept.sum())
    assert summary.constraint_active
    p = stages.p_base.double()
    assert summary.entropy_base == pytest.approx(float(-(p * torch.log2(p)).sum()), rel=1e-4)
    assert 0.0 <= summary.entropy_final < summary.entropy_base


def test_unconstrained_rows_are_all_valid(view):
    summary = dist_mod.summarize(run(10), view, 10)
    assert not summary.constraint_active
    assert all(row.valid for row in summary.tokens)


def test_as_dict_is_json_ready(view):
    import json

    json.dumps(dist_mod.summarize(run(11, valid=random_valid(11)), view, 10).as_dict())


def test_top_p_one_keeps_every_valid_token():
    valid = random_valid(12)
    stages = run(12, valid=valid, top_p=1.0)
    assert torch.equal(stages.kept, valid)
    torch.testing.assert_close(stages.p_final, hf_pipeline(logits_for(12), params(top_p=1.0), valid))


def test_a_knob_that_is_on_but_changes_nothing_here_shares_the_previous_stage():
    p = DecodingParams(repetition_penalty=1.0, presence_penalty=0.5, top_p=0.5)  # presence: no completion yet
    stages = dist_mod.compute(logits_for(13), CONTEXT, [], p)
    assert stages.names == ("base", "penalties", "temperature", "top_p")
    assert stages.probs["penalties"] is stages.p_base and stages.chain[1].survivors is None
    assert not torch.equal(stages.probs["temperature"], stages.p_base)


def test_greedy_final_entropy_is_positive_zero(view):
    summary = dist_mod.summarize(run(14, greedy=True), view, 5)
    assert summary.entropy_final == 0.0 and math.copysign(1.0, summary.entropy_final) == 1.0
    assert summary.entropy_base > 0.0


# --- greedy as its own stage, removed_by, pushed-down tokens ------------------------------------------


def test_greedy_is_its_own_stage_after_the_samplers():
    valid = random_valid(15)
    stages = run(15, valid=valid, greedy=True)
    masked = stages.probs["constraint"]
    assert stages.names == ("base", "penalties", "constraint", "top_p", "greedy")
    assert stages.argmax() == int(torch.argmax(masked)) == int(torch.argmax(stages.probs["top_p"]))
    assert torch.equal(stages.kept, stages.p_final > 0) and int(stages.kept.sum()) == 1
    assert int((masked > 0).sum()) == int(valid.sum())  # the constraint stage zeroes only the invalid tokens


def test_removed_by_names_the_first_stage_that_removed_each_row(view):
    valid = random_valid(16)
    summary = dist_mod.summarize(run(16, valid=valid, top_p=0.3), view, 40)
    by = {row.removed_by for row in summary.tokens}
    assert by == {None, "constraint", "top_p"}
    for row in summary.tokens:
        assert (row.removed_by is None) == row.kept
        assert (row.removed_by == "constraint") == (not row.valid)
        if row.removed_by == "top_p":  # valid and still there after the constraint, then cut by the nucleus
            assert row.stages["constraint"] > 0.0 and row.p_final == 0.0


def test_greedy_rows_are_removed_by_greedy_not_top_p(view):
    valid = random_valid(17)
    summary = dist_mod.summarize(run(17, valid=valid, greedy=True, top_p=1.0), view, 20)
    assert summary.stages == GREEDY_STAGES
    assert summary.stage_counts == (VOCAB, VOCAB, int(valid.sum()), 1)
    assert [row.removed_by for row in summary.tokens if row.kept] == [None]
    assert {row.removed_by for row in summary.tokens if not row.kept} == {"constraint", "greedy"}
    for row in summary.tokens:
        assert list(row.stages) == list(GREEDY_STAGES)
        assert row.stages["greedy"] == row.p_final
        assert (row.removed_by == "greedy") == (row.valid and not row.kept)


def test_summary_lists_its_stages_in_order_in_json(view):
    stages = run(18, top_p=0.5)
    out = dist_mod.summarize(stages, view, 5).as_dict()
    assert out["stages"] == list(SAMPLING_STAGES)
    assert list(out["stage_counts"]) == out["stages"]
    assert out["stage_counts"] == {
        "base": VOCAB,
        "penalties": VOCAB,
        "temperature": VOCAB,
        "top_p": int(stages.kept.sum()),
    }
    assert out["kept_token_count"] == out["stage_counts"]["top_p"] < VOCAB
    assert set(out["tokens"][0]) >= {"removed_by", "stages"} and isinstance(out["pushed_down"], list)


def test_pushed_down_rows_are_the_top_k_by_p_base_missing_from_the_rows(view):
    logits = logits_for(19)
    top = torch.topk(logits, 5).indices.tolist()
    context = [*CONTEXT, *top[:3]]  # the repetition penalty pushes the three most likely tokens down
    stages = dist_mod.compute(logits, context, [], DecodingParams(temperature=1.0, top_p=1.0, repetition_penalty=3.0))
    summary = dist_mod.summarize(stages, view, 5)
    rows = {row.id for row in summary.tokens}
    pushed = [row.id for row in summary.pushed_down]
    assert pushed == [t for t in top if t not in rows] and set(top[:3]) <= set(pushed)
    assert [row.p_base for row in summary.pushed_down] == sorted((r.p_base for r in summary.pushed_down), reverse=True)
    assert rows | set(pushed) >= set(top)


def test_no_pushed_down_rows_without_penalties(view):
    stages = dist_mod.compute(logits_for(20), CONTEXT, COMPLETION, DecodingParams(temperature=1.5, top_p=0.5))
    assert dist_mod.summarize(stages, view, 10).pushed_down == ()


@pytest.mark.parametrize("kw", [{}, {"greedy": True}, {"top_p": 1.0}])
def test_final_log_probs_are_float64_log_p_final(kw):
    valid = random_valid(21)
    p = params(frequency_penalty=0.4, **kw)
    stages = dist_mod.compute(logits_for(21), CONTEXT, COMPLETION, p, valid)
    log_final = dist_mod.final_log_probs(logits_for(21), CONTEXT, COMPLETION, p, stages.kept)
    assert log_final.dtype == torch.float64
    torch.testing.assert_close(log_final.exp(), stages.p_final.double(), atol=1e-6, rtol=1e-4)
    assert torch.equal(torch.isfinite(log_final), stages.kept)


def test_embedded_repetition_penalty_pushes_mat_and_cat_out_of_the_rows(embedded):
    from backends.prefix_cache import PrefixCache
    from decoding.engine import Engine

    engine = Engine(embedded, PrefixCache())
    params = {"temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.5}
    data = {"prompt": "The cat sat on the mat. The cat sat on the", "use_chat_template": False, "top_k": 10}
    dist = engine.preview(engine.request({**data, "params": params})).dist
    plain = engine.preview(engine.request({**data, "params": {**params, "repetition_penalty": 1.0}})).dist
    shown = [row["text"] for row in dist["tokens"]]
    pushed = [row["text"] for row in dist["pushed_down"]]
    assert " mat" in pushed and " cat" in pushed and " mat" not in shown and " cat" not in shown
    assert {" mat", " cat"} <= {row["text"] for row in plain["tokens"]} and plain["pushed_down"] == []
    ranked = sorted(dist["tokens"] + dist["pushed_down"], key=lambda row: -row["p_base"])[:10]
    assert {row["id"] for row in ranked} == {
        row["id"] for row in plain["tokens"]
    }  # the union holds the top-k by p_base
    assert all(row["p_final"] < row["p_base"] / 10 for row in dist["pushed_down"])
