"""Ablation: how much the target's score drops when one context token is replaced by the baseline id.

score[j] = f(context) - f(context with position j's id replaced by `baseline_id`), positions kept, where
f is the attributed quantity (`objective.target_score`). This is what Captum's `FeatureAblation` computes
with one feature per token position and that baseline; it is run here instead because FeatureAblation
calls the model on whole perturbed inputs and cannot reuse a KV cache. Replacing position j changes
nothing before j, so every context ablated at j shares the cached keys and values of [0, j): positions
are taken in increasing order, in batches of neighbouring positions that share the prefix of the first
one, and only the tokens from there on run again (about half the tokens of whole passes). Each batch is
one slice of the model lane; within a batch the lane is offered to others between decoder layers.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from attribution.attention import CONTEXT_KV
from attribution.gradients import lane_breaks
from attribution.guard import borrowed
from attribution.objective import baseline_id, target_score
from backends.interventions import edits_on
from backends.lane import Progress
from backends.model import LoadedModel

# New tokens per batched forward: rows of (context - shared prefix) tokens each, at least one row.
ABLATION_TOKEN_BUDGET = 2048
# Cached prefix tokens per batch, rows x prefix: each row gets its own copy of the prefix's keys and
# values (46 KB a token on SmolLM2-135M in float32, so 8,192 is about 380 MB).
ABLATION_PREFIX_BUDGET = 8192
ABLATION_DESC = "ablation"


@dataclass(frozen=True)
class AblationScores:
    """score[j] per position (float32, CPU), f at the real context, and the id that replaced each token."""

    scores: torch.Tensor
    value: float
    baseline_id: int


def batches(length: int, budget: int | None = None) -> list[range]:
    """Positions 0..length-1 in increasing order, cut so a batch's rows hold at most `budget` new tokens
    (and `ABLATION_PREFIX_BUDGET` copied prefix tokens), one row at least."""
    budget = ABLATION_TOKEN_BUDGET if budget is None else budget
    out, start = [], 0
    while start < length:
        rows = max(1, min(budget // (length - start), ABLATION_PREFIX_BUDGET // max(1, start)))
        out.append(range(start, min(length, start + rows)))
        start += rows
    return out


def _prefix_cache(loaded: LoadedModel, model: torch.nn.Module, context_ids: Sequence[int]):
    """A private KV cache of context[:-1] (from the context KV caches or the decoding cache if they hold it)."""
    key, prefix = (loaded.key, str(loaded.device), edits_on(model)), tuple(context_ids[:-1])
    if not prefix:
        return None
    cache = CONTEXT_KV.take(model, key, prefix)
    CONTEXT_KV.put(key, prefix, copy.deepcopy(cache))  # the next request on this text starts from it too
    return cache


def _run_rows(model, cache, rows: torch.Tensor, start: int, target_id: int, foil_id: int | None) -> torch.Tensor:
    """f of each row [B, L - start] continuing the first `start` tokens of `cache` (None: no prefix)."""
    past = None
    if start > 0:
        past = copy.deepcopy(cache)
        if past.get_seq_length() > start:
            past.crop(start - past.get_seq_length())
        past.batch_repeat_interleave(rows.shape[0])
    with torch.no_grad():
        logits = model(input_ids=rows, past_key_values=past, use_cache=past is not None, logits_to_keep=1).logits
    return target_score(logits[:, -1], target_id, foil_id)


def ablation_slices(
    loaded: LoadedModel, context_ids: Sequence[int], target_id: int, foil_id: int | None = None
) -> Iterator[Progress | AblationScores]:
    """One batch of ablated contexts per `next()`: Progress after each, then the `AblationScores`."""
    ids, replacement = torch.tensor(list(context_ids)), baseline_id(loaded)
    with borrowed(loaded.model) as model:
        cache = _prefix_cache(loaded, model, context_ids)
        last = ids[-1:].view(1, 1).to(model.device)
        value = float(_run_rows(model, cache, last, len(ids) - 1, target_id, foil_id)[0])
    drops = []
    for positions in batches(len(ids)):
        start = positions[0]
        rows = ids[start:].repeat(len(positions), 1)
        rows[torch.arange(len(positions)), torch.tensor(positions) - start] = replacement
        with borrowed(loaded.model) as model, lane_breaks(model):
            drops.append(value - _run_rows(model, cache, rows.to(model.device), start, target_id, foil_id).cpu())
        yield Progress(positions[-1] + 1, len(ids) + 1, ABLATION_DESC)  # one (partial) pass per position
    yield AblationScores(torch.cat(drops), value, replacement)
