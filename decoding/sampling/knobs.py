"""Small pure functions over a 1-D logits tensor: the sampling knobs, one stage each (their ranges: `registry`).

None of them modifies its input; a knob that is off returns its input as it is. Where transformers has a
processor for a knob the result equals it (see tests): repetition penalty, temperature, top-p, top-k, min-p,
typical-p, epsilon and eta cutoffs. `nucleus` returns the kept set as a bool mask; the other truncation
knobs return new logits with the removed tokens at -inf.

Whole-vocabulary sums, zero-fills, copies and masked fills of CPU tensors go through NumPy, which runs them
on one thread: torch splits a 49k-element op across its threads, and on a busy two-CPU host each split can
wait a scheduler tick (about 4 ms, tens of ms under load) for its partner thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# Enough candidates to reach the nucleus mass in nearly every real distribution; beyond it a
# full-vocabulary sort (about 5 ms on a 49k vocabulary) is the fallback.
TOP_P_CANDIDATES = 1024
NEG_INF = float("-inf")


def repetition_penalty(logits: torch.Tensor, context_ids: Sequence[int], penalty: float) -> torch.Tensor:
    """HF semantics: for each unique id of the context, divide a positive logit, multiply a negative one."""
    if penalty == 1.0 or not context_ids:
        return logits
    ids = torch.tensor(sorted(set(context_ids)), dtype=torch.long, device=logits.device)
    picked = logits[ids]
    out = copied(logits)
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
    out = copied(logits)
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
    return kept_only(logits, valid)


def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest logits and every logit tied with the k-th; 0 = off. Ref: TopKLogitsWarper."""
    if k <= 0:
        return logits
    kth = torch.topk(logits, min(k, logits.numel()))[0][..., -1, None]
    return masked(logits, logits < kth)


def min_p(logits: torch.Tensor, value: float) -> torch.Tensor:
    """Keep tokens with p >= value * p_max; 0 = off. Ref: MinPLogitsWarper (Nguyen et al. 2024, min-p sampling).

    The most likely token always meets the bar (value <= 1), which is the warper's one token kept.
    """
    if value <= 0.0:
        return logits
    probs = torch.softmax(logits, dim=-1)
    return masked(logits, probs < value * probs.amax(dim=-1, keepdim=True))


def typical_p(logits: torch.Tensor, mass: float) -> torch.Tensor:
    """Locally typical sampling (Meister et al. 2022); 1 = off. Ref: TypicalLogitsWarper.

    Tokens are ranked by |-log p - H| (H the entropy of the distribution); the smallest set in that order
    whose mass reaches `mass` is kept, with every token tied with its last member.
    """
    if mass >= 1.0:
        return logits
    normalized = torch.log_softmax(logits, dim=-1)
    entropy = -(normalized * torch.exp(normalized)).nansum(-1, keepdim=True)  # -inf * 0 is NaN: skipped
    shifted = torch.abs(-normalized - entropy)
    ranked, order = torch.sort(shifted, descending=False)
    cumulative = logits[order].softmax(dim=-1).cumsum(dim=-1)
    last = min(int((cumulative < mass).sum()), ranked.numel() - 1)
    drop_ranked = ranked > ranked[last]  # never the first ranked: the warper's one token kept
    drop = torch.empty_like(drop_ranked)
    drop[order] = drop_ranked
    return masked(logits, drop)


def epsilon_cutoff(logits: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Remove tokens with p < epsilon (Hewitt et al. 2022, truncation sampling); 0 = off. Ref: EpsilonLogitsWarper."""
    if epsilon <= 0.0:
        return logits
    return _cut_below(logits, logits.softmax(dim=-1) < epsilon)


def eta_cutoff(logits: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Remove tokens with p < eta = min(epsilon, sqrt(epsilon) * exp(-H)), H the entropy in nats; 0 = off.

    Eta sampling (Hewitt et al. 2022). Ref: EtaLogitsWarper, with epsilon in float32 as it holds it.
    """
    if epsilon <= 0.0:
        return logits
    probs = logits.softmax(dim=-1)
    entropy = torch.distributions.Categorical(logits=logits).entropy()
    eps = torch.tensor(epsilon, device=logits.device)
    eta = torch.min(eps, torch.sqrt(eps) * torch.exp(-entropy))
    return _cut_below(logits, probs < eta)


def _cut_below(logits: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
    """Remove the `below` tokens except the most likely one (and its ties): the warpers' min_tokens_to_keep=1."""
    drop = below & (logits < torch.topk(logits, 1)[0][..., -1, None])
    return masked(logits, drop)


def nucleus(logits: torch.Tensor, top_p: float, probs: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask of the top-p nucleus, exactly as transformers' TopPLogitsWarper (at least one token kept).

    A token is removed when the mass of itself and every token ranked below it is <= 1 - top_p, compared
    in float32 after a float64 sum, as the warper does on CPU. Tokens are ranked by logit (as the warper
    sorts them), which breaks ties between equal float32 probabilities the same way. The ranking comes
    from topk(TOP_P_CANDIDATES) when those candidates already reach the mass, else a full sort.
    `probs`, when given, is softmax(logits) already computed by the caller.
    """
    if top_p >= 1.0:
        return logits > float("-inf")
    scores = logits.float()
    probs = torch.softmax(scores, dim=-1) if probs is None else probs.float()
    acc = torch.float32 if scores.device.type == "mps" else torch.float64  # MPS has no float64
    threshold = _float32(1.0 - top_p)
    total = _sum(probs, acc)
    k = min(TOP_P_CANDIDATES, scores.numel())
    top_ids = torch.topk(scores, k).indices
    ranked = probs[top_ids].to(acc)
    if k < scores.numel() and _float32(total - float(ranked.sum())) > threshold:
        top_ids = torch.sort(scores, descending=True).indices  # the token after the candidates is still kept
        ranked = probs[top_ids].to(acc)
    tail = total - (torch.cumsum(ranked, 0) - ranked)  # each token's mass plus all ranked below it
    keep_count = max(1, int((tail.float() > threshold).sum()))
    chosen = top_ids[:keep_count]
    kept = zeros_like(probs, torch.bool)
    kept[chosen[probs[chosen] > 0]] = True
    return kept


def zeros_like(like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A zero tensor shaped like `like`; on CPU from calloc'ed NumPy memory, without a fill pass."""
    if like.device.type != "cpu":
        return torch.zeros(like.shape, dtype=dtype, device=like.device)
    return torch.from_numpy(np.zeros(like.shape, dtype=torch.empty(0, dtype=dtype).numpy().dtype))


def copied(values: torch.Tensor) -> torch.Tensor:
    """`values.clone()`; on CPU through NumPy, on one thread."""
    if values.device.type != "cpu":
        return values.clone()
    return torch.from_numpy(values.detach().numpy().copy())


def masked(values: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """`values.masked_fill(drop, -inf)` for a `drop` mask of the same shape; on CPU through NumPy, on one thread."""
    if values.device.type != "cpu":
        return values.masked_fill(drop, NEG_INF)
    out = values.detach().numpy().copy()
    out[drop.numpy()] = NEG_INF
    return torch.from_numpy(out)


def kept_only(values: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """`values.masked_fill(~kept, -inf)`: the kept entries as they are, every other one -inf; on CPU on one thread."""
    if values.device.type != "cpu":
        return values.masked_fill(~kept, NEG_INF)
    array = values.detach().numpy()
    return torch.from_numpy(np.where(kept.numpy(), array, np.array(NEG_INF, dtype=array.dtype)))


def _sum(values: torch.Tensor, acc: torch.dtype) -> float:
    if values.device.type == "cpu":
        return float(np.sum(values.detach().numpy(), dtype=np.float64))
    return float(values.to(acc).sum())


def _float32(value: float) -> float:
    """The value rounded to float32, as the warper's comparisons see it."""
    return float(np.float32(value))
