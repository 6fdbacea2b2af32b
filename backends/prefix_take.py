"""What a forward that extends a cached prefix starts from: the prefix's keys and values, taken for the caller.

`take_longest`: one row, the longest cached prefix under some edits: an entry that is exactly that prefix is
taken out of the cache (stepping extends it in place), a longer one copied and cropped (the branch it belongs to
keeps its own), a pair's row a view. `take_pair`: an edited step's 2-row start, the edited and the unedited keys
and values of one prefix as one batch ("pair", ids, edits): row 0 under the edits, row 1 the unedited model,
extended together by the next edited step (backends.two_rows), with no stacking or splitting per step. Both run
under the entries' lock.
"""

from __future__ import annotations

import copy

from transformers import DynamicCache

from backends import kv_rows
from backends.bounded import BoundedCache
from backends.interventions import NO_EDITS, Edits, first_layer
from backends.prefix_search import longest, pair_under, row_under


def take_longest(
    entries: BoundedCache, ids: tuple[int, ...], limit: int, edits: Edits, config: object, copied: bool = False
) -> tuple[int, DynamicCache]:
    """(length, KV) of the longest cached prefix of ids under `edits` no longer than `limit`, the caller's now
    (an empty cache of length 0 when there is none). `copied`: a copy of its own, the entries left as they are
    (for callers that keep the cache a while: attention attribution)."""
    key, row, start = longest(entries, ids, limit, row_under(edits))
    if key is None or start == 0:
        return 0, DynamicCache(config=config)
    if key[0] == "pair":
        view = kv_rows.view(entries.peek(key), slice(row, row + 1), start)
        return start, kv_rows.owned(view) if copied else view
    if len(key[1]) == start and not copied:
        return start, entries.pop(key)
    kv = copy.deepcopy(entries.peek(key))
    kv.crop(start - kv.get_seq_length())
    return start, kv


def take_pair(
    entries: BoundedCache, ids: tuple[int, ...], edits: Edits, config: object, within: int
) -> tuple[int, DynamicCache | None]:
    """The edited and unedited KV of the longest cached prefix of ids[:-1] as one 2-row cache, the caller's now:
    the pair entry itself (taken out: extended in place), a view of a longer one, or two one-row prefixes of
    one length stacked (the layers below the first edit shared); (0, None) when there is none within `within`
    tokens of `ids`."""
    limit = len(ids) - 1
    key, _, start = longest(entries, ids, limit, pair_under(edits))
    rows = [longest(entries, ids, limit, row_under(e)) for e in (edits, NO_EDITS)]
    if key is not None and start >= max(length for _, _, length in rows) and len(ids) - start <= within:
        if len(key[1]) == start:
            return start, entries.pop(key)
        return start, kv_rows.view(entries.peek(key), slice(0, 2), start)
    (edited, e_row, start), (unedited, u_row, other) = rows
    if start != other or not start or len(ids) - start > within:
        return 0, None
    parts = ((edited, e_row), (unedited, u_row))
    views = [kv_rows.view(entries.peek(key), slice(row, row + 1), start) for key, row in parts]
    return start, kv_rows.stacked(views, config, shared=first_layer(edits))
