"""Which cached keys and values hold the longest prefix of a token-id sequence, under which model edits.

The prefix cache keeps one-row entries ("kv", ids, edits) and 2-row pairs ("pair", ids, edits): row 0 under the
edits, row 1 the unedited model, extended together by an edited step. A reader names the row it needs through a
`row_of(key)` function (`row_under`, `pair_under`); `longest` searches the entries with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from backends.interventions import Edits

Key = tuple  # (kind, token ids, edits)
RowOf = Callable[[Key], "int | None"]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the shared start of two token-id sequences."""
    a, b = tuple(a), tuple(b)
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    diff = torch.nonzero(torch.tensor(a[:n]) != torch.tensor(b[:n]))
    return int(diff[0])


def longest(keys: Iterable[Key], ids: Sequence[int], limit: int, row_of: RowOf) -> tuple[Key | None, int, int]:
    """(key, batch row, length) of the entry holding the longest prefix of `ids` no longer than `limit`, among the
    keys `row_of` gives a row of. On a tie, an entry that is exactly the shared prefix wins: it is extended without
    a copy; else the first put (the entries are searched in the order they were put)."""
    best: tuple[Key | None, int, int] = (None, 0, 0)
    for key in keys:
        if (row := row_of(key)) is None:
            continue
        common = min(common_prefix(key[1], ids), limit)
        if common > best[2] or (common == best[2] and common and len(key[1]) == common):
            best = (key, row, common)
    return best


def row_under(edits: Edits) -> RowOf:
    """The row holding the model under `edits`: a one-row entry's under them, row 0 of a pair under them, and
    row 1 (the unedited model) of any pair when `edits` is empty."""

    def row_of(key: Key) -> int | None:
        kind, _, under = key
        if kind == "kv" and under == edits:
            return 0
        if kind == "pair" and under == edits:
            return 0
        if kind == "pair" and not edits:
            return 1
        return None

    return row_of


def pair_under(edits: Edits) -> RowOf:
    """A pair under `edits`, whole (row 0 is its first row)."""
    return lambda key: 0 if key[0] == "pair" and key[2] == edits else None


def below_at(layer: int) -> RowOf:
    """An entry ("below", ids, layer) of the unedited model's input to decoder layer `layer` (backends.lower_layers)."""
    return lambda key: 0 if key[0] == "below" and key[2] == layer else None
