"""Whether two attributions of the same target agree: Spearman's rank correlation of their scores.

Scores are compared by magnitude (|normalized|), as the faithfulness numbers rank them, so a signed
method and an unsigned one can be compared; attention's display scores leave out the attention sink.
Methods "disagree" when rho < `DISAGREE_BELOW`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

DISAGREE_BELOW = 0.5


def _ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties given the mean of the ranks they span."""
    array = np.asarray(values, dtype=float)
    order = np.argsort(array, kind="stable")
    ranks = np.empty(len(array))
    ranks[order] = np.arange(1, len(array) + 1)
    for value in np.unique(array):
        tied = array == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_agreement(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho of two score lists (ties averaged); 0.0 when either list is constant."""
    if len(a) != len(b):
        raise ValueError(f"score lists of {len(a)} and {len(b)} positions cannot be compared: give equal lengths")
    ra, rb = _ranks(a), _ranks(b)
    if len(a) < 2 or ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def agreement(a: Mapping, b: Mapping) -> dict:
    """{"methods", "rho", "disagree"} of two attribution results (dicts as the API answers them) of one target.

    Raises ValueError when they explain different targets (token, foil, position or context length).
    """
    same = ("target_id", "contrast_token_id", "target_index")
    for key in same:
        if a.get(key) != b.get(key):
            raise ValueError(f"results explain different targets ({key} {a.get(key)!r} vs {b.get(key)!r}): compare one")
    rho = rank_agreement([abs(x) for x in a["normalized"]], [abs(x) for x in b["normalized"]])
    return {"methods": [a["method"], b["method"]], "rho": rho, "disagree": rho < DISAGREE_BELOW}
