"""Knobs on synthetic logits, checked against transformers' processors and the OpenAI penalty formula."""

from __future__ import annotations

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

from decoding.sampling import knobs

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
    "top_k": lambda x: knobs.top_k(x, 40),
    "min_p": lambda x: knobs.min_p(x, 0.05),
    "typical_p": lambda x: knobs.typical_p(x, 0.9),
    "epsilon_cutoff": lambda x: knobs.epsilon_cutoff(x, 0.001),
    "eta_cutoff": lambda x: knobs.eta_cutoff(x, 0.001),
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


# The truncation knobs against transformers' warpers (min_tokens_to_keep=1), each as (knob, warper, values).
WARPERS = {
    "top_k": (knobs.top_k, TopKLogitsWarper, (1, 2, 5, 40, 1000, 100000)),
    "min_p": (knobs.min_p, MinPLogitsWarper, (0.001, 0.02, 0.05, 0.1, 0.3, 0.9, 1.0)),
    "typical_p": (knobs.typical_p, TypicalLogitsWarper, (0.05, 0.2, 0.5, 0.9, 0.95, 0.999)),
    "epsilon_cutoff": (knobs.epsilon_cutoff, EpsilonLogitsWarper, (3e-4, 1e-3, 0.01, 0.1, 0.3, 0.9)),
    "eta_cutoff": (knobs.eta_cutoff, EtaLogitsWarper, (3e-4, 1e-3, 0.01, 0.1, 0.3, 0.9)),
}
OFF = {"top_k": 0, "min_p": 0.0, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0}


def varied_logits(seed: int, vocab: int, kind: str) -> torch.Tensor:
    """Plain normal logits, logits with a third masked to -inf (as a constraint does), or heavily tied ones."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "ties":
        return torch.randint(-4, 4, (vocab,), generator=gen).float()
    logits = torch.randn(vocab, generator=gen) * (1.0 + seed % 4)
    if kind == "masked":
        logits[torch.rand(vocab, generator=gen) < 0.33] = float("-inf")
        logits[seed % vocab] = 0.5  # at least one valid token, as a constraint guarantees
    return logits


def hf_warped(warper, logits: torch.Tensor) -> torch.Tensor:
    return warper(torch.zeros(1, 1, dtype=torch.long), logits[None].clone())[0]


@pytest.mark.parametrize("kind", ["plain", "masked", "ties"])
@pytest.mark.parametrize("vocab", [1, 2, 7, 50, 1000])
@pytest.mark.parametrize("name", sorted(WARPERS))
def test_truncation_knob_matches_transformers_on_small_vocabularies(name, vocab, kind):
    knob, warper, values = WARPERS[name]
    for seed in range(8):
        logits = varied_logits(seed, vocab, kind)
        for value in values:
            expected = hf_warped(warper(value), logits)
            assert torch.equal(knob(logits, value), expected), (seed, value)


@pytest.mark.parametrize("kind", ["plain", "masked", "ties"])
@pytest.mark.parametrize("name", sorted(WARPERS))
def test_truncation_knob_matches_transformers_on_a_49k_vocabulary(name, kind):
    knob, warper, values = WARPERS[name]
    for seed in range(3):
        logits = varied_logits(seed, 49152, kind)
        for value in values[seed % 2 :: 2]:  # half the values per seed: a full-vocabulary sort is slow
            expected = hf_warped(warper(value), logits)
            assert torch.equal(knob(logits, value), expected), (seed, value)


@pytest.mark.parametrize("name", sorted(WARPERS))
def test_truncation_knob_off_returns_its_input(name):
    logits = varied_logits(0, 100, "masked")
    assert WARPERS[name][0](logits, OFF[name]) is logits


@pytest.mark.parametrize(("name", "value"), [("min_p", 1.0), ("epsilon_cutoff", 0.9), ("eta_cutoff", 0.9)])
def test_cutoff_that_would_remove_everything_keeps_the_most_likely_tokens(name, value):
    """min_tokens_to_keep=1: a flat distribution has every p below 0.9, yet the top token (and its ties) stay."""
    logits = torch.tensor([1.0, 3.0, 3.0, 2.0, float("-inf")])
    kept = torch.isfinite(WARPERS[name][0](logits, value))
    assert kept.tolist() == [False, True, True, False, False]


def test_top_k_keeps_ties_with_the_kth_logit():
    logits = torch.tensor([5.0, 4.0, 4.0, 4.0, 1.0])
    assert torch.isfinite(knobs.top_k(logits, 2)).tolist() == [True, True, True, True, False]


def test_typical_p_keeps_tokens_closest_to_the_entropy_first():
    """One token holds 97%: its surprise (0.03 nats) is closest to the entropy, so typical-p 0.5 keeps it alone."""
    logits = torch.log(torch.tensor([0.97, 0.01, 0.01, 0.01]))
    assert torch.isfinite(knobs.typical_p(logits, 0.5)).tolist() == [True, False, False, False]


def probs_of_survivors(out: torch.Tensor) -> list[float]:
    """The renormalised probability of each surviving token, in id order (what llama.cpp's dist sampler shows)."""
    return torch.softmax(out, -1)[torch.isfinite(out)].tolist()


# llama.cpp's tests/test-sampling.cpp cases for the same definitions (inputs are probabilities; logits = log p).
# Its expected lists are in llama.cpp's sorted order; here they are per surviving token id, ascending.
LLAMA_CPP_CASES = [
    ("top_k", 1, [1.0]),
    ("top_k", 3, [0.22222, 0.33333, 0.44444]),
    ("top_k", 4, [0.1, 0.2, 0.3, 0.4]),
    ("top_k", 0, [0.1, 0.2, 0.3, 0.4]),
    ("min_p", 0.00, [0.1, 0.2, 0.3, 0.4]),
    ("min_p", 0.24, [0.1, 0.2, 0.3, 0.4]),
    ("min_p", 0.26, [0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9]),
    ("min_p", 0.49, [0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9]),
    ("min_p", 0.51, [0.3 / 0.7, 0.4 / 0.7]),
    ("min_p", 0.74, [0.3 / 0.7, 0.4 / 0.7]),
    ("min_p", 0.76, [1.0]),
    ("min_p", 1.00, [1.0]),
]


@pytest.mark.parametrize(("name", "value", "expected"), LLAMA_CPP_CASES)
def test_top_k_and_min_p_agree_with_llama_cpp_test_cases(name, value, expected):
    """Mirrors test_top_k and test_min_p of llama.cpp's test-sampling.cpp (min_p 1.05 is outside the range here)."""
    logits = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    out = getattr(knobs, name)(logits, value)
    assert probs_of_survivors(out) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("probs", "expected"), [([0.97, 0.01, 0.01, 0.01], [0.97]), ([0.4, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2])]
)
def test_typical_p_agrees_with_llama_cpp_test_cases(probs, expected):
    """Mirrors test_typical of llama.cpp's test-sampling.cpp (p = 0.5; its expected values are not renormalised)."""
    logits = torch.log(torch.tensor(probs))
    kept = torch.isfinite(knobs.typical_p(logits, 0.5))
    assert torch.tensor(probs)[kept].tolist() == pytest.approx(expected)


def test_one_thread_copies_and_masks_equal_torchs_and_leave_the_input():
    """copied, masked and kept_only (NumPy on CPU, one thread) give torch's clone and masked_fill, bit for bit."""
    logits = torch.randn(49152, generator=torch.Generator().manual_seed(0))
    before = logits.clone()
    drop = logits > 0.5
    assert torch.equal(knobs.copied(logits), logits) and knobs.copied(logits).data_ptr() != logits.data_ptr()
    assert torch.equal(knobs.masked(logits, drop), logits.masked_fill(drop, float("-inf")))
    assert torch.equal(knobs.kept_only(logits, drop), logits.masked_fill(~drop, float("-inf")))
    doubled = logits.double()
    assert knobs.kept_only(doubled, drop).dtype == torch.float64
    assert torch.equal(knobs.kept_only(doubled, drop), doubled.masked_fill(~drop, float("-inf")))
    assert torch.equal(logits, before)
