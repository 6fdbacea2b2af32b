"""Exact KL divergence of two next-token distributions in bits (branch comparison, a model edit, a reference).

Both run once or twice a step over the whole vocabulary, so they avoid boolean-mask indexing (a compaction of
the full vector, the costliest op here) where it changes nothing: `kl_bits` sums over the whole vocabulary
first (a finite sum means every token is in both supports) and compacts only otherwise; `kl_or_reason`
takes logs only on p's support, found by NumPy on one thread.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# A KL this far below 0 (in bits) is float64 rounding of (nearly) equal distributions, not a result.
ROUNDING_BITS = 1e-12


def _bits(lp: torch.Tensor, lq: torch.Tensor) -> float:
    """sum exp(lp) (lp - lq) in bits, float64 rounding below 0 read as 0; nan or inf where a log is -inf."""
    total = float((lp.exp() * (lp - lq)).sum()) / math.log(2.0)
    return 0.0 if -ROUNDING_BITS <= total < 0.0 else total


def _kl_over(lp: torch.Tensor, lq: torch.Tensor) -> float:
    """KL in bits of float64 log-probabilities over p's support (`lp` all finite); inf when q is 0 there."""
    return _bits(lp, lq) if bool(torch.isfinite(lq).all()) else math.inf


def kl_bits(log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """KL(p || q) in bits over the full vocabulary, in float64; inf when q is 0 where p is not."""
    lp, lq = log_p.double(), log_q.double()
    total = _bits(lp, lq)
    if math.isfinite(total):  # no -inf in either (it would make a term nan or inf): the sum over the support
        return total
    support = torch.isfinite(lp)
    return _kl_over(lp[support], lq[support])


def _support(p: torch.Tensor) -> torch.Tensor:
    """The indices where p > 0 (on CPU through NumPy, on one thread)."""
    if p.device.type != "cpu":
        return torch.nonzero(p > 0).flatten()
    return torch.from_numpy(np.flatnonzero(p.detach().numpy() > 0))


def kl_or_reason(p: torch.Tensor, q: torch.Tensor, p_name: str, q_name: str) -> tuple[float | None, str | None]:
    """(KL(p || q) in bits, None) of two probability vectors, or (None, why) where it is infinite: `q_name` is 0
    on tokens that `p_name` keeps."""
    index = _support(p)
    p_in, q_in = (p[index], q[index]) if len(index) < p.numel() else (p, q)
    kl = _kl_over(p_in.double().log(), q_in.double().log())
    if math.isinf(kl):
        lost = int(((p > 0) & (q == 0)).sum())
        return None, f"infinite: {q_name} is 0 on {lost} token(s) {p_name} keeps"
    return kl, None
