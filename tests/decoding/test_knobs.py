"""Knobs on synthetic logits, checked against transformers' processors and the OpenAI penalty formula."""

from __future__ import annotations

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopPLogitsWarper

from decoding import knobs

SEEDS = range(40)
TOP_PS = (0.05, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999)


def random_logits(seed: int, vocab: int = 1000, scale: float = 3.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(vocab, generator=gen) * scale


def random_ids(seed: int, vocab: int, n: int = 40) -> list[int]:
    gen = torch.Generator().manual_seed(seed + 1000)
    return torch.randint(0, vocab, (n,), generator=gen).tolist()


def hf_top_p_kept(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    out = TopPLogitsWarper(top_p, min_tokens_to_keep=1)(torch.zeros(1, 1, dtype=torch.long), logits[None].clone())
    return torch.isfinite(out[0])


def peaked_with_flat_tail(seed: int, vocab: int = 49152) -> torch.Tensor:
    """One token holds about half the mass, the rest is a near-flat tail: topk(1024) cannot reach 0.9."""
    logits = random_logits(seed, vocab, scale=0.01)
    logits[seed % vocab] = float(torch.log(torch.tensor(float(vocab))))
    return logits


@pytest.mark.parametrize("vocab", [1000, 49152])
@pytest.mark.parametrize("penalty", [0.5, 1.05, 1.3, 2.0])
def test_repetition_penalty_matches_transformers(vocab, penalty):
    for seed in range(10):
        logits, ids = random_logits(seed, vocab), random_ids(seed, vocab)
        expected = RepetitionPenaltyLogitsProcessor(penalty)(torch.tensor([ids]), logits[None].clone())[0]
        torch.testing.assert_close(knobs.repetition_penalty(logits, ids, penalty), expected, rtol=0, atol=0)


def test_repetition_penalty_touches_only_context_ids():
    logits = random_logits(0)
    out = knobs.repetition_penalty(logits, [3, 3, 7], 1.5)
    changed = torch.nonzero(out != logits).flatten().tolist()
    assert changed == [3, 7]


@pytest.mark.parametrize("value", [0.1, 0.7, 1.5, 3.0])
def test_temperature_matches_transformers(value):
    for seed in SEEDS:
        logits = random_logits(seed)
        expected = TemperatureLogitsWarper(value)(torch.zeros(1, 1, dtype=torch.long), logits[None].clone())[0]
        torch.testing.assert_close(knobs.temperature(logits, value), expected, rtol=0, atol=0)


def test_temperature_zero_and_one_leave_logits_unchanged():
    logits = random_logits(1)
    assert torch.equal(knobs.temperature(logits, 0.0), logits)
    assert torch.equal(knobs.temperature(logits, 1.0), logits)


@pytest.mark.parametrize("top_p", TOP_PS)
def test_nucleus_matches_transformers_on_random_logits(top_p):
    for seed in SEEDS:
        logits = random_logits(seed)
        assert torch.equal(knobs.nucleus(logits, top_p), hf_top_p_kept(logits, top_p)), seed


@pytest.mark.parametrize("top_p", (0.3, 0.9, 0.99))
def test_nucleus_matches_transformers_on_large_vocab(top_p):
    for seed in range(5):
        logits = random_logits(seed, 49152, scale=2.0)
        assert torch.equal(knobs.nucleus(logits, top_p), hf_top_p_kept(logits, top_p)), seed


@pytest.mark.parametrize("top_p", (0.6, 0.9, 0.95))
def test_nucleus_full_sort_fallback_matches_transformers(top_p):
    for seed in range(5):
        logits = peaked_with_flat_tail(seed)
        top = torch.topk(torch.softmax(logits, -1), knobs.TOP_P_CANDIDATES).values.sum()
        assert top < top_p  # the candidates alone do not reach the mass: the fallback path runs
        kept = knobs.nucleus(logits, top_p)
        assert int(kept.sum()) > knobs.TOP_P_CANDIDATES
        assert torch.equal(kept, hf_top_p_kept(logits, top_p)), seed


@pytest.mark.parametrize("vocab", [1000, 49152])
@pytest.mark.parametrize("top_p", (0.2, 0.5, 0.9))
def test_nucleus_matches_transformers_on_flat_logits(vocab, top_p):
    for seed in range(3):
        logits = random_logits(seed, vocab, scale=1e-3)
        kept = knobs.nucleus(logits, top_p)
        assert torch.equal(kept, hf_top_p_kept(logits, top_p)), seed
        assert abs(int(kept.sum()) - top_p * vocab) <= 0.01 * vocab + 1


def test_nucleus_keeps_the_top_token_when_it_alone_exceeds_top_p():
    logits = torch.tensor([10.0, 0.0, -1.0, 2.0])
    assert knobs.nucleus(logits, 0.5).tolist() == [True, False, False, False]


def test_nucleus_never_keeps_masked_tokens():
    logits = random_logits(2)
    logits[::2] = float("-inf")
    kept = knobs.nucleus(logits, 0.999)
    assert not kept[::2].any()
    assert torch.equal(kept, hf_top_p_kept(logits, 0.999))


def test_nucleus_top_p_one_keeps_every_finite_token():
    logits = random_logits(3)
    logits[5] = float("-inf")
    kept = knobs.nucleus(logits, 1.0)
    assert int(kept.sum()) == logits.numel() - 1 and not kept[5]


def openai_penalty(logits: torch.Tensor, completion: list[int], presence: float, frequency: float) -> torch.Tensor:
    """mu[j] - c[j] * alpha_frequency - float(c[j] > 0) * alpha_presence, written out per token."""
    out = logits.clone()
    for j in range(out.numel()):
        count = completion.count(j)
        out[j] = out[j] - count * frequency - float(count > 0) * presence
    return out


@pytest.mark.parametrize(("presence", "frequency"), [(0.5, 0.0), (0.0, 0.7), (1.2, -0.4), (-2.0, 2.0)])
def test_presence_frequency_penalty_matches_openai_formula(presence, frequency):
    for seed in range(5):
        logits, ids = random_logits(seed, 300), random_ids(seed, 30, n=60)  # small id range: many repeats
        expected = openai_penalty(logits, ids, presence, frequency)
        out = knobs.presence_frequency_penalty(logits, ids, presence, frequency)
        torch.testing.assert_close(out, expected)


def test_presence_frequency_penalty_off_or_empty_is_identity():
    logits = random_logits(4)
    assert torch.equal(knobs.presence_frequency_penalty(logits, [1, 2], 0.0, 0.0), logits)
    assert torch.equal(knobs.presence_frequency_penalty(logits, [], 1.0, 1.0), logits)


def test_apply_mask_sets_invalid_tokens_to_minus_infinity():
    logits = random_logits(5, 10)
    valid = torch.tensor([True, False] * 5)
    out = knobs.apply_mask(logits, valid)
    assert torch.equal(out[valid], logits[valid])
    assert torch.isneginf(out[~valid]).all()
    assert knobs.apply_mask(logits, None) is logits


KNOB_CALLS = {
    "repetition_penalty": lambda x: knobs.repetition_penalty(x, [1, 2, 2, 900], 1.3),
    "presence_frequency": lambda x: knobs.presence_frequency_penalty(x, [1, 2, 2, 900], 0.5, 0.5),
    "temperature": lambda x: knobs.temperature(x, 0.6),
    "apply_mask": lambda x: knobs.apply_mask(x, torch.arange(x.numel()) % 3 == 0),
    "nucleus": lambda x: knobs.nucleus(x, 0.7),
}


@pytest.mark.parametrize("name", sorted(KNOB_CALLS))
def test_knob_leaves_input_unmodified(name):
    logits = random_logits(6)
    logits[:10] = -logits[:10].abs()  # negative logits among the penalised ids too
    before = logits.clone()
    out = KNOB_CALLS[name](logits)
    assert torch.equal(logits, before)
    assert out.data_ptr() != logits.data_ptr()


def test_nucleus_with_precomputed_probs_gives_the_same_set():
    for seed in range(5):
        logits = random_logits(seed, 49152, scale=2.0)
        probs = torch.softmax(logits, -1)
        assert torch.equal(knobs.nucleus(logits, 0.9, probs=probs), knobs.nucleus(logits, 0.9))
