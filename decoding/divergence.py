"""Exact KL divergence of two next-token distributions in bits (branch comparison, a model edit, a reference)."""

from __future__ import annotations

import math

import torch

# A KL this far below 0 (in bits) is float64 rounding of (nearly) equal distributions, not a result.
ROUNDING_BITS = 1e-12


def kl_bits(log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """KL(p || q) in bits over the full vocabulary, in float64; inf when q is 0 where p is not."""
    support = torch.isfinite(log_p)
    lp, lq = log_p[support].double(), log_q[support].double()
    if not torch.isfinite(lq).all():
        return math.inf
    total = float((lp.exp() * (lp - lq)).sum()) / math.log(2.0)
    return 0.0 if -ROUNDING_BITS <= total < 0.0 else total


def kl_or_reason(p: torch.Tensor, q: torch.Tensor, p_name: str, q_name: str) -> tuple[float | None, str | None]:
    """(KL(p || q) in bits, None) of two probability vectors, or (None, why) where it is infinite: `q_name` is 0
    on tokens that `p_name` keeps."""
    kl = kl_bits(p.double().log(), q.double().log())
    if math.isinf(kl):
        lost = int(((p > 0) & (q == 0)).sum())
        return None, f"infinite: {q_name} is 0 on {lost} token(s) {p_name} keeps"
    return kl, None
