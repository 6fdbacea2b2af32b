"""Reproducible, stateless randomness: a draw is a pure function of (seed, branch, position); inverse-CDF sampling."""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
import torch


def draw_uniform(seed: int | None, branch_id: str, position: int) -> float:
    """A number in [0, 1): a pure function of (seed, branch, position) with a seed, fresh entropy without."""
    if seed is None:
        return secrets.randbits(53) / 2**53
    digest = hashlib.blake2b(f"{seed}|{branch_id}|{position}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2**53


def sample(p_final: torch.Tensor, u: float) -> int:
    """Inverse CDF over the final distribution: the token whose cumulative interval holds u."""
    probs = p_final.detach().cpu().numpy()
    cdf = np.cumsum(probs, dtype=np.float64)  # on one thread (see distribution.py)
    if not np.isfinite(cdf[-1]) or cdf[-1] <= 0:
        raise ValueError("no token has a positive final probability here: loosen the knobs (temperature, penalties)")
    index = min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), probs.size - 1)
    while probs[index] <= 0:  # rounding can land on a zero-mass tail; step back to a real token
        index -= 1
    return index
