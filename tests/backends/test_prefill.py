"""A long prefill runs in chunks: the same logits as one pass, and waiting requests go between chunks."""

from __future__ import annotations

import threading

import pytest
import torch

from backends import prefix_cache as cache_mod
from backends.lane import Lane
from backends.prefix_cache import PrefixCache

CHUNK = 4


def one_pass(loaded, ids, keep: int) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(torch.tensor([list(ids)]), logits_to_keep=keep).logits[0].float()


def ids_of(n: int, seed: int = 0) -> list[int]:
    return torch.randint(3, 49000, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


# passes: chunks of 4, the last one merged with the one before while it is shorter than last_n
@pytest.mark.parametrize(("length", "last_n", "passes"), [(30, 1, 8), (30, 7, 6), (9, 9, 1), (12, 5, 2), (4, 1, 1)])
def test_chunked_prefill_equals_one_pass(tiny, monkeypatch, length, last_n, passes):
    monkeypatch.setattr(cache_mod, "PREFILL_CHUNK", CHUNK)
    cache, ids = PrefixCache(), ids_of(length)
    got = cache.logits(tiny, ids, last_n=last_n)
    torch.testing.assert_close(got, one_pass(tiny, ids, last_n), atol=1e-5, rtol=0)
    assert cache.stats.forward_calls == passes


def test_a_prefill_after_a_cached_prefix_is_chunked_too(tiny, monkeypatch):
    monkeypatch.setattr(cache_mod, "PREFILL_CHUNK", CHUNK)
    cache, ids = PrefixCache(), ids_of(26, seed=1)
    cache.logits(tiny, ids[:5])
    calls = cache.stats.forward_calls
    torch.testing.assert_close(cache.logits(tiny, ids)[0], one_pass(tiny, ids, 1)[-1], atol=1e-5, rtol=0)
    assert cache.stats.forward_calls - calls == 6  # 21 new tokens in chunks of 4
    assert cache.stats.tokens_run == 26


def test_a_request_waiting_during_a_long_prefill_runs_between_chunks(tiny, monkeypatch):
    lane, log = Lane(), []
    monkeypatch.setattr(cache_mod, "PREFILL_CHUNK", CHUNK)
    monkeypatch.setattr(cache_mod, "LANE", lane)
    waiting = threading.Event()

    def step():
        with lane.hold():
            log.append("step")

    real_forward = tiny.model.forward

    def forward(*args, **kwargs):
        log.append("chunk")
        if log.count("chunk") == 1:  # while the first chunk runs, another request queues
            threading.Thread(target=step, daemon=True).start()
            while lane.waiting == 0:
                waiting.wait(0.001)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(tiny.model, "forward", forward)
    PrefixCache().logits(tiny, ids_of(12, seed=2))
    assert log == ["chunk", "step", "chunk", "chunk"]
