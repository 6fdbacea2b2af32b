"""Ablation, contrastive targets, words, faithfulness and rank agreement, against independent references.

On the tiny random Llama (fast) with a few checks on the real embedded model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution import ablation as ablation_mod
from attribution import agreement, attribute, rank_agreement, words
from attribution import faithfulness as faithfulness_mod
from attribution.guard import snapshot
from attribution.words import word_spans
from backends.model import LoadedModel
from tests.attribution.test_attribution import TARGET

FOIL = 77


def plain_score(loaded: LoadedModel, rows: list[list[int]], target: int, foil: int | None = None) -> torch.Tensor:
    """f of each context from one plain forward each, no cache: log p(target) [- log p(foil)]."""
    out = []
    for row in rows:
        with torch.no_grad():
            logprobs = loaded.model(torch.tensor([row])).logits[0, -1].log_softmax(-1)
        out.append(logprobs[target] - (0 if foil is None else logprobs[foil]))
    return torch.stack(out)


def ablated(ids: list[int], positions, replacement: int) -> list[int]:
    return [replacement if i in positions else token for i, token in enumerate(ids)]


def pad_id(loaded: LoadedModel) -> int:
    tokenizer = loaded.tokenizer
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


# --- ablation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [1, 25, 2048])  # one position a batch, batches sharing a prefix, one batch
def test_ablation_equals_one_plain_forward_per_ablated_context(tiny, ids, monkeypatch, budget):
    monkeypatch.setattr(ablation_mod, "ABLATION_TOKEN_BUDGET", budget)
    result = attribute(tiny, ids, TARGET, "ablation")
    pad = pad_id(tiny)
    full = plain_score(tiny, [ids], TARGET)[0]
    expected = full - plain_score(tiny, [ablated(ids, {j}, pad) for j in range(len(ids))], TARGET)
    torch.testing.assert_close(torch.tensor(result.scores), expected, atol=1e-4, rtol=0)
    assert result.target_logprob == pytest.approx(float(full), abs=1e-4)
    assert result.signed and result.method == "ablation" and str(pad) in result.baseline
    assert float(torch.tensor(result.normalized).abs().max()) == pytest.approx(1.0)


def test_ablation_on_embedded_reuses_the_decoding_cache(embedded, tokenizer, monkeypatch):
    from backends.prefix_cache import PREFIX_CACHE

    short = tokenizer("Paris is the capital of")["input_ids"]
    target = tokenizer(" France")["input_ids"][0]
    PREFIX_CACHE.logits(embedded, short)
    monkeypatch.setattr(ablation_mod, "ABLATION_TOKEN_BUDGET", 8)
    result = attribute(embedded, short, target, "ablation")
    pad = pad_id(embedded)
    full = plain_score(embedded, [short], target)[0]
    expected = full - plain_score(embedded, [ablated(short, {j}, pad) for j in range(len(short))], target)
    torch.testing.assert_close(torch.tensor(result.scores), expected, atol=1e-4, rtol=0)


def test_ablation_batches_cover_every_position_once_in_order():
    plan = ablation_mod.batches(10, budget=25)
    assert [list(b) for b in plan] == [[0, 1], [2, 3, 4], [5, 6, 7, 8, 9]]  # rows of 10, 8 and 5 tokens
    assert [j for b in ablation_mod.batches(300) for j in b] == list(range(300))
    long = ablation_mod.batches(2048)
    assert [j for b in long for j in b] == list(range(2048))
    assert all(len(b) * b[0] <= ablation_mod.ABLATION_PREFIX_BUDGET or len(b) == 1 for b in long)


def test_ablation_reports_progress_per_position(tiny, ids, monkeypatch):
    from attribution import attribute_slices

    monkeypatch.setattr(ablation_mod, "ABLATION_TOKEN_BUDGET", 25)
    items = list(attribute_slices(tiny, ids, TARGET, "ablation"))
    progress = items[:-1]
    assert len(progress) == len(ablation_mod.batches(len(ids), 25))
    assert [p.done for p in progress][-1] == len(ids) and progress[-1].total == len(ids) + 1
    assert progress[0].desc == "ablation"


# --- contrastive targets --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients", "ablation"])
def test_contrastive_scores_are_the_difference_of_the_two_targets(tiny, ids, method):
    options = {"aggregation": "sum", "ig_steps": 8}
    a = attribute(tiny, ids, TARGET, method, **options)
    b = attribute(tiny, ids, FOIL, method, **options)
    both = attribute(tiny, ids, TARGET, method, contrast_token_id=FOIL, **options)
    difference = torch.tensor(a.scores) - torch.tensor(b.scores)
    torch.testing.assert_close(torch.tensor(both.scores), difference, atol=1e-4, rtol=1e-4)
    assert both.target_logprob == pytest.approx(a.target_logprob - b.target_logprob, abs=1e-4)
    assert both.contrast_token_id == FOIL and both.as_dict()["contrast_token_id"] == FOIL
    assert a.contrast_token_id is None


@pytest.mark.parametrize(
    ("method", "foil", "message"),
    [
        ("saliency", TARGET, f"contrast_token_id {TARGET} is the target token itself"),
        ("ablation", 49152, "contrast_token_id 49152 is outside the vocabulary: accepted is 0 to 49151$"),
        ("saliency", -1, r"contrast_token_id -1 is outside the vocabulary"),
        ("attention", FOIL, "contrast_token_id does not apply to attention"),
    ],
)
def test_bad_foils_are_refused_before_any_work(tiny, ids, method, foil, message):
    before = snapshot(tiny.model)
    with pytest.raises(ValueError, match=message):
        attribute(tiny, ids, TARGET, method, contrast_token_id=foil)
    assert snapshot(tiny.model) == before


def test_the_foil_is_part_of_the_cache_key(tiny, ids):
    plain = attribute(tiny, ids, TARGET, "saliency")
    assert attribute(tiny, ids, TARGET, "saliency", contrast_token_id=FOIL) is not plain


# --- faithfulness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "foil"), [("saliency", None), ("ablation", FOIL), ("attention", None)])
def test_faithfulness_recomputed_independently(tiny, ids, method, foil):
    result = attribute(tiny, ids, TARGET, method, aggregation="sum", contrast_token_id=foil)
    found = result.faithfulness
    k = max(1, round(0.2 * len(ids)))
    assert found.k == k
    by_magnitude = np.argsort(-np.abs(np.array(result.normalized)), kind="stable")[:k]
    draws = faithfulness_mod.random_positions(ids, k)
    pad = pad_id(tiny)
    rows = [ids, ablated(ids, set(by_magnitude.tolist()), pad), *(ablated(ids, set(d), pad) for d in draws)]
    values = plain_score(tiny, rows, TARGET, foil)
    assert found.comprehensiveness == pytest.approx(float(values[0] - values[1]), abs=1e-4)
    assert found.random_baseline == pytest.approx(float((values[0] - values[2:]).mean()), abs=1e-4)
    assert result.as_dict()["faithfulness"] == {
        "comprehensiveness": found.comprehensiveness, "random_baseline": found.random_baseline, "k": k,
    }  # fmt: skip


def test_random_draws_are_a_pure_function_of_the_ids(ids):
    first = faithfulness_mod.random_positions(ids, 3)
    assert first == faithfulness_mod.random_positions(list(ids), 3)
    assert len(first) == 5 and all(len(set(d)) == 3 and max(d) < len(ids) for d in first)
    assert faithfulness_mod.random_positions([*ids[:-1], ids[-1] + 1], 3) != first


def test_top_positions_rank_by_magnitude():
    assert faithfulness_mod.top_positions([0.1, -0.9, 0.5, 0.2], 2) == [1, 2]
    assert faithfulness_mod.top_k(1) == 1 and faithfulness_mod.top_k(256) == 51


# --- rank agreement -------------------------------------------------------------------------------


def test_rank_agreement_is_spearman_with_averaged_ties():
    assert rank_agreement([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_agreement([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks with ties averaged: a = 1, 2.5, 2.5, 4; b = 1, 2, 3, 4 -> Pearson of the ranks
    expected = float(np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])
    assert rank_agreement([0.1, 0.5, 0.5, 0.9], [1, 2, 3, 4]) == pytest.approx(expected)
    assert rank_agreement([1, 1, 1], [1, 2, 3]) == 0.0
    with pytest.raises(ValueError, match="score lists of 2 and 3 positions"):
        rank_agreement([1, 2], [1, 2, 3])


def test_agreement_of_two_results_of_one_target(tiny, ids):
    a = attribute(tiny, ids, TARGET, "saliency").as_dict() | {"target_index": 0}
    b = attribute(tiny, ids, TARGET, "ablation").as_dict() | {"target_index": 0}
    found = agreement(a, b)
    expected = rank_agreement(np.abs(a["normalized"]), np.abs(b["normalized"]))
    assert found == {"methods": ["saliency", "ablation"], "rho": expected, "disagree": expected < 0.5}
    assert agreement(a, a)["rho"] == pytest.approx(1.0) and not agreement(a, a)["disagree"]
    with pytest.raises(ValueError, match="results explain different targets \\(target_id"):
        agreement(a, b | {"target_id": FOIL})


# --- words ----------------------------------------------------------------------------------------


def test_word_spans_follow_visible_spaces_and_special_tokens():
    texts = ["<|im_start|>", "user", "\n", "Un", "believ", "able", " news", "!", " ok", "<|im_end|>"]
    special = [True, False, False, False, False, False, False, False, False, True]
    assert word_spans(texts, special) == [(0, 1), (1, 2), (2, 3), (3, 6), (6, 8), (8, 9), (9, 10)]


@pytest.mark.parametrize("signed", [False, True])
def test_word_scores_sum_to_the_token_scores(signed):
    texts, special = ["The", " qu", "ick", " fox", "es"], [False] * 5
    scores = [0.5, -1.0, 0.25, 2.0, -0.5] if signed else [0.1, 0.2, 0.3, 0.25, 0.15]
    found = words(texts, special, scores, [s / 2 for s in scores], signed)
    assert [(w.start, w.end, w.text) for w in found] == [(0, 1, "The"), (1, 3, " quick"), (3, 5, " foxes")]
    assert [w.score for w in found] == pytest.approx([0.5, -0.75, 1.5] if signed else [0.1, 0.5, 0.4])
    assert sum(w.score for w in found) == pytest.approx(sum(scores))
    shown = [w.normalized for w in found]
    assert shown == pytest.approx([1 / 3, -0.5, 1.0] if signed else [0.05, 0.25, 0.2])
    with pytest.raises(ValueError, match="5 token texts for 4 scores"):
        words(texts, special, scores[:4], scores[:4], signed)
