"""An edited step's 2-row entry (row 0 under the edits, row 1 the unedited model): each row's keys and values equal
a one-row forward of their own with a hook written here; edits switched off and on again, a rewind and prefetch's
batch read the right row and run only the new tokens (no cross-talk, no work done twice)."""

from __future__ import annotations

import pytest
import torch

from backends.interventions import NO_EDITS, Steer
from backends.prefix_cache import PrefixCache

ATOL = 1e-4
LAYER = 1


@pytest.fixture
def steer(tiny) -> tuple[Steer, ...]:
    vector = torch.randn(tiny.model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    return (Steer(LAYER, tuple(vector.tolist()), 5.0),)


def ids_of(n: int, seed: int = 0) -> tuple[int, ...]:
    return tuple(torch.randint(3, 900, (n,), generator=torch.Generator().manual_seed(seed)).tolist())


def hooked(tiny, ids, steer: tuple[Steer, ...] = ()):
    """Logits after each of `ids` and the keys and values of one plain forward, steered by a hook written here."""
    edit = steer[0] if steer else None

    def add(module, args, output):
        return output + edit.alpha * torch.tensor(edit.vector)

    layer = tiny.model.model.layers[LAYER]
    handle = layer.register_forward_hook(add) if edit else None
    try:
        with torch.no_grad():
            out = tiny.model(input_ids=torch.tensor([list(ids)]), use_cache=True)
    finally:
        if handle is not None:
            handle.remove()
    return out.logits[0].float(), out.past_key_values


def test_the_pair_rows_equal_one_row_forwards_of_their_own(tiny, steer):
    cache, ids = PrefixCache(), ids_of(12)
    cache.logits(tiny, ids[:9], edits=steer)
    cache.logits(tiny, ids[:9])
    for n in (10, 11, 12):  # the first step stacks the two rows, the next ones extend the pair
        cache.with_unedited(tiny, ids[:n], steer)
    pair = cache._entries.peek(("pair", ids, steer))
    assert pair is not None and ("kv", ids, steer) not in cache._entries
    # below the steered layer both rows are the same, kept once; from it on, two rows
    assert [layer.keys.shape[0] for layer in pair.layers] == [1] * LAYER + [2] * (len(pair.layers) - LAYER)
    for row, edits in enumerate((steer, NO_EDITS)):
        logits, alone = hooked(tiny, ids, edits)
        torch.testing.assert_close(cache.logits(tiny, ids, edits=edits)[0], logits[-1], atol=ATOL, rtol=0)
        for mine, theirs in zip(pair.layers, alone.layers, strict=True):
            mine_row = min(row, mine.keys.shape[0] - 1)
            torch.testing.assert_close(mine.keys[mine_row : mine_row + 1], theirs.keys, atol=ATOL, rtol=0)
            torch.testing.assert_close(mine.values[mine_row : mine_row + 1], theirs.values, atol=ATOL, rtol=0)


def test_edits_off_and_on_again_and_a_rewind_read_the_right_row(tiny, steer):
    cache, ids = PrefixCache(), ids_of(14, seed=1)
    cache.logits(tiny, ids[:10], edits=steer)
    cache.logits(tiny, ids[:10])
    cache.with_unedited(tiny, ids[:11], steer)
    before = cache.stats.tokens_run
    for n, edits in ((12, NO_EDITS), (12, steer), (13, steer), (8, steer), (9, NO_EDITS)):
        torch.testing.assert_close(cache.logits(tiny, ids[:n], edits=edits)[0], hooked(tiny, ids[:n], edits)[0][-1])
    # each extension ran its new token only; each rewind ran its last token again
    assert cache.stats.tokens_run - before == 5
    assert cache._entries.peek(("pair", ids[:11], steer)) is not None  # one-row readers leave the pair whole


def test_prefetch_under_edits_extends_the_pair_rows_without_running_the_prefix_again(tiny, steer):
    cache, ids = PrefixCache(), ids_of(10, seed=2)
    cache.logits(tiny, ids[:8], edits=steer)
    cache.logits(tiny, ids[:8])
    cache.with_unedited(tiny, ids[:9], steer)
    cache.with_unedited(tiny, ids, steer)
    for edits in (steer, NO_EDITS):  # what prefetch does under edits: the candidates under them and without
        before = cache.stats.tokens_run
        rows = cache.batch_logits(tiny, ids, [(5,), (9,)], keep=True, edits=edits)
        assert cache.stats.tokens_run - before == 2  # the two candidates, not the context again
        for row, token in zip(rows, (5, 9), strict=True):
            torch.testing.assert_close(row, hooked(tiny, (*ids, token), edits)[0][-1], atol=ATOL, rtol=0)
