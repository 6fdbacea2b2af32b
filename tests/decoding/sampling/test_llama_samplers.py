"""llama.cpp's samplers (top-n-sigma, XTC, DRY): the numeric cases of llama.cpp's tests/test-sampling.cpp, ported,
plus checks of each definition against an independent reference on random inputs.

llama.cpp's tests start from probabilities (logit = log p) and read the probabilities after the sampler,
renormalised by its dist sampler where the test applies one. Its expected lists follow llama.cpp's array order;
here they are written per token id.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from decoding.sampling import llama_samplers as ls
from decoding.tokens import TokenView

INF = float("-inf")


def logits_of(probs: list[float]) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float32))


def renormalised(out: torch.Tensor) -> list[float]:
    """Probabilities per token id after the sampler, removed tokens at 0 (llama.cpp's dist sampler)."""
    return torch.softmax(out, -1).tolist()


# top-n-sigma


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1.0, [0.0, 0.0, 0.428571, 0.571429]), (0.0, [0.1, 0.2, 0.3, 0.4]), (3.0, [0.1, 0.2, 0.3, 0.4])],
)
def test_top_n_sigma_llama_cpp_cases(n, expected):
    """Mirrors the three test_top_n_sigma cases of test-sampling.cpp (n = 0 is a no-op, not greedy)."""
    out = ls.top_n_sigma(logits_of([0.1, 0.2, 0.3, 0.4]), n)
    assert renormalised(out) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("n", [0.5, 1.0, 2.0, 3.5])
def test_top_n_sigma_keeps_logits_within_n_sigma_of_the_max_of_the_finite_logits(n):
    for seed in range(10):
        gen = torch.Generator().manual_seed(seed)
        logits = torch.randn(5000, generator=gen) * (1 + seed)
        logits[torch.rand(5000, generator=gen) < 0.3] = INF
        finite = logits[torch.isfinite(logits)].numpy().astype(np.float64)
        floor = finite.max() - n * finite.std()
        expected = logits.numpy().astype(np.float64) >= floor
        assert np.array_equal(torch.isfinite(ls.top_n_sigma(logits, n)).numpy(), expected), seed


def test_top_n_sigma_ignores_removed_tokens():
    """Tokens already at -inf change neither the max nor sigma: the kept set equals that of the finite part."""
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, -3.0])
    padded = torch.cat([logits, torch.full((20,), INF)])
    assert torch.equal(ls.top_n_sigma(padded, 1.0)[:5], ls.top_n_sigma(logits, 1.0))


# XTC

# llama.cpp's test_xtc seeds the sampler's generator with 0: its first float draw is 0.5488135.
LLAMA_CPP_XTC_DRAW = 0.5488135


@pytest.mark.parametrize(
    ("threshold", "kept_ids"), [(0.09, [3]), (0.19, [2, 3]), (0.29, [1, 2, 3]), (0.39, [0, 1, 2, 3])]
)
def test_xtc_llama_cpp_cases(threshold, kept_ids):
    """Mirrors test_xtc of test-sampling.cpp: probability 0.99, three "should" cases and one "should not".

    Its expected values are the survivors' probabilities before renormalisation (no dist sampler follows).
    """
    probs = [0.4, 0.3, 0.2, 0.1]
    out = ls.xtc(logits_of(probs), threshold, 0.99, LLAMA_CPP_XTC_DRAW)
    kept = torch.isfinite(out)
    assert torch.nonzero(kept).flatten().tolist() == kept_ids
    assert torch.softmax(logits_of(probs), -1)[kept].tolist() == pytest.approx([probs[i] for i in kept_ids])


def test_xtc_acts_only_when_the_draw_is_at_most_the_probability():
    logits = logits_of([0.4, 0.3, 0.2, 0.1])
    assert ls.xtc(logits, 0.15, 0.5, 0.51) is logits
    assert torch.isfinite(ls.xtc(logits, 0.15, 0.5, 0.5)).tolist() == [False, False, True, True]
    assert ls.xtc(logits, 0.15, 0.0, 0.0) is logits


def test_xtc_does_nothing_when_fewer_than_two_tokens_reach_the_threshold():
    logits = logits_of([0.6, 0.2, 0.1, 0.1])
    assert ls.xtc(logits, 0.3, 1.0, 0.0) is logits
    assert ls.xtc(logits, 0.7, 1.0, 0.0) is logits


def test_xtc_keeps_the_least_likely_of_the_tokens_over_the_threshold_among_finite_ones():
    """Threshold 0: every valid token reaches it; tokens removed earlier (p = 0) are not candidates."""
    logits = torch.tensor([2.0, INF, 1.0, 0.5, INF])
    assert torch.isfinite(ls.xtc(logits, 0.0, 1.0, 0.3)).tolist() == [False, False, False, True, False]


def test_xtc_tie_for_least_likely_keeps_the_highest_id():
    logits = torch.tensor([1.0, 3.0, 1.0, -5.0])
    assert torch.isfinite(ls.xtc(logits, 0.05, 1.0, 0.0)).tolist() == [False, False, True, True]


def test_xtc_on_random_logits_removes_exactly_the_tokens_over_the_threshold_but_one():
    for seed in range(10):
        logits = torch.randn(2000, generator=torch.Generator().manual_seed(seed)) * 4
        probs = torch.softmax(logits, -1)
        over = torch.nonzero(probs >= 0.05).flatten().tolist()
        removed = torch.nonzero(torch.isinf(ls.xtc(logits, 0.05, 1.0, 0.2))).flatten().tolist()
        if len(over) < 2:
            assert removed == []
        else:
            assert sorted(removed) == sorted(set(over) - {min(over, key=lambda i: probs[i])})


# DRY

DRY_CASES = [
    # probs, context, expected, multiplier, base, allowed_length, penalty_last_n, breakers
    ([0.25] * 4, [0, 1], [0.25] * 4, 1.0, 1.1, 2, 4, {}),
    ([0.25] * 4, [0, 1, 2, 0, 1], [0.296923, 0.296923, 0.109232, 0.296923], 1.0, 1.1, 2, 5, {}),
    ([0.2] * 5, [0, 1, 3, 4, 0, 1], [0.2] * 5, 1.0, 1.1, 2, 6, {3: ((),)}),
    ([0.2] * 5, [0, 1, 2, 0, 1], [0.241818, 0.241818, 0.032727, 0.241818, 0.241818], 2.0, 1.1, 2, 5, {}),
    ([0.2] * 5, [0, 1, 2, 3, 4, 0, 1], [0.2] * 5, 1.0, 1.1, 4, 7, {}),
]


@pytest.mark.parametrize(("probs", "context", "expected", "mult", "base", "allowed", "last_n", "breakers"), DRY_CASES)
def test_dry_llama_cpp_cases(probs, context, expected, mult, base, allowed, last_n, breakers):
    """Mirrors the five test_dry cases of test-sampling.cpp, in order: a context too short to repeat; "0 1" repeated
    penalises 2; the same repeat ending right after breaker token 3 (the token-id breaker {{3}}) penalises nothing;
    multiplier 2; allowed length 4 longer than the repeat."""
    out = ls.dry(logits_of(probs), context, mult, base, allowed, last_n, breakers)
    assert renormalised(out) == pytest.approx(expected, abs=1e-5)


def test_dry_the_llama_cpp_source_example():
    """The worked example in llama.cpp's DRY source: "a b c c b c y a b c" gives c a repeat of 3, y of 2, b of 1."""
    a, b, c, y = 0, 1, 2, 3
    logits = torch.zeros(4)
    out = ls.dry(logits, [a, b, c, c, b, c, y, a, b, c], 0.8, 1.75, 2, -1)
    assert out.tolist() == pytest.approx([0.0, 0.0, -0.8 * 1.75, -0.8])


def test_dry_window_is_the_last_penalty_last_n_tokens():
    context = [5, 6, 7, 1, 2, 3, 4, 5, 6]  # "5 6" repeats; its first occurrence is 9 tokens back
    logits = torch.zeros(10)
    assert ls.dry(logits, context, 1.0, 1.75, 2, -1)[7] == -1.0
    assert ls.dry(logits, context, 1.0, 1.75, 2, 9)[7] == -1.0
    assert ls.dry(logits, context, 1.0, 1.75, 2, 8) is logits  # the window starts at 6: no repeat
    assert ls.dry(logits, context, 1.0, 1.75, 2, 0) is logits
    assert ls.dry(logits, context, 0.0, 1.75, 2, -1) is logits


def test_dry_repeat_is_capped_at_the_tokens_after_the_last_breaker():
    """ "1 9 2 3" repeats (next token 5); after breaker 9 only "2 3" counts, and too few tokens after it stop DRY."""
    logits = torch.zeros(10)
    context = [1, 9, 2, 3, 5, 1, 9, 2, 3]
    assert ls.dry(logits, context, 1.0, 2.0, 2, -1)[5] == -4.0  # 1 * 2 ** (4 - 2)
    assert ls.dry(logits, context, 1.0, 2.0, 2, -1, {9: ((),)})[5] == -1.0  # capped at 2: 1 * 2 ** 0
    assert ls.dry(logits, context[:-1], 1.0, 2.0, 2, -1, {9: ((),)}) is logits  # 1 token after it < 2
    assert ls.dry(logits, context[:-1], 1.0, 2.0, 2, -1)[3] == -2.0  # without it, "1 9 2" is followed by 3


def test_dry_multi_token_breaker_needs_its_whole_tail():
    """Breaker head 8 with tail (9,): "8 9" caps the repeat "8 9 1 2" at 2; 8 followed by 7 breaks nothing."""
    breakers = {8: ((9,),)}
    logits = torch.zeros(10)
    assert ls.dry(logits, [8, 9, 1, 2, 5, 8, 9, 1, 2], 1.0, 1.75, 2, -1, breakers)[5] == -1.0
    assert ls.dry(logits, [8, 9, 1, 2, 5, 8, 9, 1, 2], 1.0, 1.75, 2, -1)[5] == -(1.75**2)
    assert ls.dry(logits, [8, 7, 1, 2, 5, 8, 7, 1, 2], 1.0, 1.75, 2, -1, breakers)[5] == -(1.75**2)


def test_dry_never_penalises_a_single_token_breaker():
    logits = torch.zeros(6)
    out = ls.dry(logits, [1, 2, 5, 3, 1, 2], 1.0, 1.75, 2, -1, {5: ((),)})
    assert torch.equal(out, logits)
    assert ls.dry(logits, [1, 2, 5, 3, 1, 2], 1.0, 1.75, 2, -1)[5] == -1.0


def test_dry_exponent_is_clamped_before_float32_overflow():
    """base 1.1: llama.cpp clamps the exponent to int(88.7228391 / ln 1.1) = 930, so a 1000-token repeat stays finite."""
    context = list(range(1000)) * 2
    out = ls.dry(torch.zeros(1000), context, 1.0, 1.1, 2, -1)
    assert math.isfinite(out[0]) and out[0] == pytest.approx(-(float(np.float32(1.1)) ** 930), rel=1e-6)
    assert float(np.finfo(np.float32).max) < 1.1**998  # unclamped, the penalty would overflow to -inf


def naive_dry(logits, context, mult, base, allowed, last_n, breaker_ids):
    """DRY written out from its definition: O(n^2), single-token breakers only."""
    window = context if last_n < 0 else context[-last_n:]
    if mult == 0 or last_n == 0 or len(window) <= allowed:
        return logits
    after_breaker = [i for i, t in enumerate(window) if t in breaker_ids]
    limit = len(window) - 1 - after_breaker[-1] if after_breaker else len(window)
    if limit < allowed:
        return logits
    longest = {}
    for end in range(len(window) - 1):  # a suffix ending at `end` that also ends the window
        n = 0
        while n <= end and window[end - n] == window[-1 - n]:
            n += 1
        n = min(n, limit)
        if n >= allowed:
            longest[window[end + 1]] = max(n, longest.get(window[end + 1], 0))
    out = logits.clone()
    for token, n in longest.items():
        if token not in breaker_ids:
            out[token] -= float(np.float32(mult * base ** (n - allowed)))
    return out


def test_dry_matches_its_definition_on_random_contexts():
    rng = random.Random(0)
    for trial in range(300):
        alphabet = rng.choice([2, 3, 5, 12])
        context = [rng.randrange(alphabet) for _ in range(rng.randrange(1, 80))]
        if trial % 3 == 0:  # long exact repeats
            context = context[:10] * rng.randrange(2, 6) + context[10:13]
        allowed, last_n = rng.choice([1, 2, 3, 4]), rng.choice([-1, 0, 5, 20, 64])
        breaker_ids = set(rng.sample(range(alphabet), 1)) if trial % 2 else set()
        logits = torch.randn(alphabet, generator=torch.Generator().manual_seed(trial))
        breakers = {t: ((),) for t in breaker_ids}
        expected = naive_dry(logits, context, 0.75, 1.75, allowed, last_n, breaker_ids)
        assert torch.equal(ls.dry(logits, context, 0.75, 1.75, allowed, last_n, breakers), expected), trial


# DRY sequence breakers from a vocabulary

FAKE_VOCAB = [b"a", b"b\n", b"x:", b"hel", b"lo", b"he", b"llo world", b"xh", b"", b"ello", b"l", b"o"]
FAKE_TOKENS = {"lo": [4], "llo": [10, 4], "ello": [9]}


def test_sequence_breakers_as_llama_cpp_builds_them():
    """A token holding a breaker is a breaker alone; one ending with a proper prefix of a breaker starts one,
    completed by the tokens of the rest."""
    built = ls.sequence_breakers(["\n", ":", "hello"], lambda i: FAKE_VOCAB[i], len(FAKE_VOCAB), FAKE_TOKENS.get)
    assert dict(built) == {1: ((),), 2: ((),), 3: ((4,),), 5: ((10, 4),), 7: ((9,),)}


def test_sequence_breakers_of_the_embedded_vocabulary(tokenizer):
    view = TokenView(tokenizer)
    built = ls.sequence_breakers(ls.DRY_SEQUENCE_BREAKERS, view.token_bytes, len(tokenizer), lambda s: [])
    newline = tokenizer.encode("\n", add_special_tokens=False)
    colon = tokenizer.encode(":", add_special_tokens=False)
    assert len(newline) == 1 and built[newline[0]] == ((),) and built[colon[0]] == ((),)
    assert all(tails == ((),) for tails in built.values())  # one-character breakers have no tails
    assert all(any(s.encode() in view.token_bytes(t) for s in ls.DRY_SEQUENCE_BREAKERS) for t in built)


@pytest.mark.parametrize("value", ["\n", ["\n", ""], ["x" * 41], [3], None])
def test_check_sequence_breakers_refuses_with_a_one_line_message(value):
    with pytest.raises(ValueError, match=r"^dry_sequence_breakers .* accepted is a list of non-empty strings"):
        ls.check_sequence_breakers(value)


def test_check_sequence_breakers_accepts_the_defaults():
    assert ls.check_sequence_breakers(list(ls.DRY_SEQUENCE_BREAKERS)) == ("\n", ":", '"', "*")


# Shared properties

CALLS = {
    "top_n_sigma": lambda x: ls.top_n_sigma(x, 1.0),
    "xtc": lambda x: ls.xtc(x, 0.001, 1.0, 0.5),
    "dry": lambda x: ls.dry(x, [1, 2, 3, 1, 2, 3, 1, 2], 0.8, 1.75, 2, -1),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_sampler_leaves_input_unmodified(name):
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(1)) * 3
    logits[100:200] = INF
    before = logits.clone()
    out = CALLS[name](logits)
    assert torch.equal(logits, before)
    assert out.data_ptr() != logits.data_ptr() and not torch.equal(out, logits)
