"""Small pure functions over a 1-D logits tensor: the sampling knobs, one stage each.

None of them modifies its input. Where transformers has a processor for a knob the result equals
it (see tests): repetition penalty, temperature and top-p.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Enough candidates to reach the nucleus mass in nearly every real distribution; beyond it a
# full-vocabulary sort (about 5 ms on a 49k vocabulary) is the fallback.
TOP_P_CANDIDATES = 1024


def repetition_penalty(logits: torch.Tensor, context_ids: Sequence[int], penalty: float) -> torch.Tensor:
    """HF semantics: for each unique id of the context, divide a positive logit, multiply a negative one."""
    if penalty == 1.0 or not context_ids:
        return logits
    ids = torch.tensor(sorted(set(context_ids)), dtype=torch.long, device=logits.device)
    picked = logits[ids]
    out = logits.clone()
    out[ids] = torch.where(picked < 0, picked * penalty, picked / penalty)
    return out


def presence_frequency_penalty(
    logits: torch.Tensor, completion_ids: Sequence[int], presence: float, frequency: float
) -> torch.Tensor:
    """OpenAI semantics over completion tokens only: subtract count * frequency + (count > 0) * presence."""
    if (presence == 0.0 and frequency == 0.0) or not completion_ids:
        return logits
    ids = torch.tensor(list(completion_ids), dtype=torch.long, device=logits.device)
    unique, counts = torch.unique(ids, return_counts=True)
    out = logits.clone()
    out[unique] -= counts.to(logits.dtype) * frequency + presence
    return out


def temperature(logits: torch.Tensor, value: float) -> torch.Tensor:
    """Divide by the temperature; 0 (greedy) and 1 leave the logits as they are."""
    if value in (0.0, 1.0):
        return logits
    return logits / value


def apply_mask(logits: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Invalid tokens to -inf; `valid` is a bool tensor of the same length, or None for no constraint."""
    if valid is None:
        return logits
    return logits.masked_fill(~valid, float("-inf"))


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Bool mask of the top-p nucleus, exactly as transformers' TopPLogitsWarper (at least one token kept).

    A token is kept when the mass of the tokens ranked strictly above it is below top_p. The ranking
    comes from topk(TOP_P_CANDIDATES) when those candidates already reach the mass, else a full sort.
    """
    if top_p >= 1.0:
        return logits > float("-inf")
    probs = torch.softmax(logits.float(), dim=-1)
    k = min(TOP_P_CANDIDATES, probs.numel())
    top_probs, top_ids = torch.topk(probs, k)
    if k < probs.numel() and float(top_probs.sum()) < top_p:
        top_probs, top_ids = torch.sort(probs, descending=True)
    mass_before = torch.cumsum(top_probs, 0) - top_probs
    keep_count = max(1, int((mass_before < top_p).sum()))
    kept = torch.zeros_like(probs, dtype=torch.bool)
    kept[top_ids[:keep_count]] = True
    return kept & (probs > 0)
