"""Prefix KV cache: cached logits equal a full forward; reuse, bounds and concurrency.

Issue "Step cost independent of context length": a step runs only the new token whatever the context.
"""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from transformers import DynamicCache

from backends import kv_rows, prefix_take
from backends.model import LoadedModel
from backends.prefix_cache import PrefixCache
from decoding.engine import Engine

ATOL = 1e-4


def full_logits(loaded: LoadedModel, ids, keep: int = 1) -> torch.Tensor:
    """A full forward over all ids without a cache; the last `keep` rows."""
    with torch.no_grad():
        return loaded.model(torch.tensor([list(ids)]), logits_to_keep=keep).logits[0].float()


def assert_matches_full(cache: PrefixCache, loaded: LoadedModel, ids) -> None:
    torch.testing.assert_close(cache.logits(loaded, ids)[0], full_logits(loaded, ids)[-1], atol=ATOL, rtol=0)


def token_ids(seed: int, n: int) -> list[int]:
    return torch.randint(3, 49000, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def count_kv_copies(monkeypatch) -> list[int]:
    """Counts the KV caches the prefix cache deep-copies (a branch or rewind copies, a step must not)."""
    copies: list[int] = []
    real = copy.deepcopy

    def counting(value, memo=None):
        if isinstance(value, DynamicCache):
            copies.append(1)
        return real(value, memo)

    monkeypatch.setattr(prefix_take.copy, "deepcopy", counting)
    return copies


@pytest.fixture
def cache() -> PrefixCache:
    return PrefixCache()


@pytest.fixture(scope="module")
def other_tiny(tiny) -> LoadedModel:
    """A second tiny model with other weights and another key: loading it must empty the cache."""
    torch.manual_seed(1)
    model = type(tiny.model)(tiny.model.config).eval()
    model.requires_grad_(False)
    return LoadedModel(model, tiny.tokenizer, "tiny-random-llama-2", "test", torch.device("cpu"), key=-2)


def test_successive_steps_match_full_forward_and_run_one_token_each(tiny, cache):
    ids = token_ids(0, 12)
    assert_matches_full(cache, tiny, ids)
    for token in token_ids(1, 6):
        ids.append(token)
        before = cache.stats.tokens_run
        assert_matches_full(cache, tiny, ids)
        assert cache.stats.tokens_run == before + 1


def test_step_cost_does_not_grow_with_context(tiny, cache, monkeypatch):
    copies = count_kv_copies(monkeypatch)
    for length in (10, 200):
        ids = token_ids(length, length)
        cache.logits(tiny, ids)
        before = (cache.stats.tokens_run, cache.stats.forward_calls)
        cache.logits(tiny, [*ids, 7])
        assert (cache.stats.tokens_run, cache.stats.forward_calls) == (before[0] + 1, before[1] + 1)
    assert copies == []  # stepping extends the entry in place


def test_multi_token_rows_match_full_forward(tiny, cache):
    prefix = token_ids(2, 10)
    cache.logits(tiny, prefix)
    ids = prefix + token_ids(3, 5)
    rows = cache.logits(tiny, ids, last_n=4)
    torch.testing.assert_close(rows, full_logits(tiny, ids, keep=4), atol=ATOL, rtol=0)
    before = cache.stats.forward_calls
    for j in range(1, 5):  # every row is cached for its own prefix
        torch.testing.assert_close(cache.logits(tiny, ids[: len(ids) - 4 + j])[0], rows[j - 1])
    assert cache.stats.forward_calls == before


def test_rewind_matches_full_forward(tiny, cache):
    ids = token_ids(4, 30)
    cache.logits(tiny, ids)
    for length in (20, 11, 25):
        assert_matches_full(cache, tiny, ids[:length])
    assert_matches_full(cache, tiny, [*ids, 99])


def test_alternating_branches_match_full_forward(tiny, cache):
    prefix = token_ids(5, 15)
    branches = {"a": list(prefix), "b": list(prefix)}
    assert_matches_full(cache, tiny, prefix)
    for step, (a, b) in enumerate(zip(token_ids(6, 5), token_ids(7, 5), strict=True)):
        branches["a"].append(a)
        branches["b"].append(b + step)
        assert_matches_full(cache, tiny, branches["a"])
        assert_matches_full(cache, tiny, branches["b"])


def test_branch_after_rewind_reuses_exact_prefix_without_copy(tiny, cache, monkeypatch):
    ids = token_ids(8, 20)
    cache.logits(tiny, ids)
    copies = count_kv_copies(monkeypatch)
    cache.logits(tiny, ids[:12])  # rewind: copies the longer entry once
    assert copies == [1]
    assert_matches_full(cache, tiny, [*ids[:12], 5])
    assert copies == [1]


def test_model_switch_clears_cache_and_uses_new_model(tiny, other_tiny, cache):
    ids = token_ids(9, 16)
    first = cache.logits(tiny, ids)[0].clone()
    calls = cache.stats.forward_calls
    second = cache.logits(other_tiny, ids)[0]
    assert cache.stats.forward_calls == calls + 1
    assert cache.stats.tokens_run == 2 * len(ids)  # nothing of the first model was reused
    torch.testing.assert_close(second, full_logits(other_tiny, ids)[-1], atol=ATOL, rtol=0)
    assert not torch.allclose(first, second, atol=1e-3)
    torch.testing.assert_close(cache.logits(tiny, ids)[0], first, atol=ATOL, rtol=0)


def test_same_request_twice_runs_no_forward(tiny, cache):
    ids = token_ids(10, 8)
    cache.logits(tiny, ids)
    calls = cache.stats.forward_calls
    cache.logits(tiny, list(ids))
    assert cache.stats.forward_calls == calls and cache.stats.logits_hits == 1


@pytest.mark.parametrize("last_n", [0, 9])
def test_last_n_out_of_range(tiny, cache, last_n):
    with pytest.raises(ValueError, match="last_n"):
        cache.logits(tiny, token_ids(11, 8), last_n=last_n)


def engine_request(engine: Engine, completion=(), **params):
    return engine.request(
        {
            "prompt": "Once upon a time",
            "use_chat_template": False,
            "completion_ids": list(completion),
            "params": {"greedy": True, **params},
        }
    )


def test_engine_preview_after_step_and_repeat_run_no_forward(tiny, cache):
    engine = Engine(tiny, cache)
    result = engine.step(engine_request(engine))
    calls = cache.stats.forward_calls
    engine.preview(engine_request(engine, result.completion_ids))
    engine.preview(engine_request(engine, result.completion_ids))
    assert cache.stats.forward_calls == calls


def test_engine_step_after_preview_runs_one_token(tiny, cache):
    engine = Engine(tiny, cache)
    engine.preview(engine_request(engine, [11, 12]))
    calls, tokens = cache.stats.forward_calls, cache.stats.tokens_run
    engine.step(engine_request(engine, [11, 12]))
    assert (cache.stats.forward_calls, cache.stats.tokens_run) == (calls + 1, tokens + 1)


def test_memory_stays_within_bound(tiny):
    one_logits = tiny.vocab_size * 4
    cache = PrefixCache(max_bytes=3 * one_logits)
    for seed in range(6):
        ids = token_ids(100 + seed, 20 + seed)
        for extra in range(3):
            cache.logits(tiny, ids + [5] * extra)
            assert 0 < cache.nbytes <= cache.max_bytes
        assert_matches_full(cache, tiny, [*ids, 5, 5, 5])
    assert cache.nbytes == sum(kv_rows.entry_bytes(cache._entries.peek(key)) for key in cache._entries)


def test_bound_smaller_than_one_entry_still_gives_correct_logits(tiny):
    cache = PrefixCache(max_bytes=1000)
    ids = token_ids(12, 10)
    for n in range(3):
        assert_matches_full(cache, tiny, ids + [7] * n)
        assert cache.nbytes <= 1000


def test_clear_empties_the_cache(tiny, cache):
    cache.logits(tiny, token_ids(13, 10))
    assert cache.nbytes > 0
    cache.clear()
    assert cache.nbytes == 0


def test_concurrent_requests_give_correct_logits(tiny):
    cache = PrefixCache(max_bytes=40 * tiny.vocab_size * 4)
    shared = token_ids(14, 10)
    jobs = [shared + token_ids(200 + t, 3) + token_ids(300 + s, s + 1) for t in range(4) for s in range(4)]
    expected = {tuple(ids): full_logits(tiny, ids)[-1] for ids in jobs}
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(len(jobs)):
                ids = jobs[(i + offset) % len(jobs)]
                torch.testing.assert_close(cache.logits(tiny, ids)[0], expected[tuple(ids)], atol=ATOL, rtol=0)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 3,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.nbytes <= cache.max_bytes
