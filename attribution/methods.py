"""The public attribution entry point: validate a request, run one method, reduce and normalise, cache.

`attribute` answers "which context tokens does the choice of `target_id` after `context_ids` depend on?"
(with a `contrast_token_id`: "... of `target_id` rather than the foil?") with one of `METHODS`. Gradient
methods return one vector per token, reduced over the embedding dimension as named by `aggregation`;
attention is averaged over heads and layers; ablation measures each token's removal. Every result
carries its faithfulness (see attribution.faithfulness). Results are cached per request in a small
LRU, so switching back to an earlier view costs nothing.
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from attribution import ablation, attention, gradients
from attribution.faithfulness import Faithfulness, faithfulness
from attribution.validation import as_int, validate
from backends.bounded import BoundedCache
from backends.lane import Progress
from backends.model import LoadedModel

CACHE_ENTRIES = 64

AGGREGATION_NAMES = {
    "l2": "L2 norm over the embedding dimension, scaled to sum to 1 (Inseq convention)",
    "sum": "signed sum over the embedding dimension, divided by the largest |score| (Captum convention)",
}
ABLATION_NAME = (
    "drop of the target's log-probability when the token is replaced by the baseline id, positions kept;"
    " display divided by the largest |drop|"
)
ATTENTION_SINK_NOTE = "position 0 (attention sink) excluded and the rest renormalised to sum to 1"


@dataclass(frozen=True)
class AttributionResult:
    """One attribution of `target_id` to every context token; `scores` raw, `normalized` for display."""

    method: str
    scores: tuple[float, ...]
    normalized: tuple[float, ...]
    aggregation: str
    target_id: int
    target_logprob: float  # the attributed value: log p(target), minus log p(foil) when contrastive
    elapsed_s: float
    signed: bool = False  # scores can be negative (signed sums, ablation), else magnitudes or attention shares
    contrast_token_id: int | None = None  # the foil: scores explain log p(target) - log p(foil)
    faithfulness: Faithfulness | None = None
    fell_back_to_cpu: bool = False
    completeness_error: float | None = None
    steps: int | None = None
    baseline: str | None = None

    def as_dict(self) -> dict:
        data = dict(self.__dict__)
        data["scores"] = list(self.scores)
        data["normalized"] = list(self.normalized)
        data["faithfulness"] = None if self.faithfulness is None else self.faithfulness.as_dict()
        return data


# --- reduction and normalisation ------------------------------------------------------------------


def reduce_embedding(attributions: torch.Tensor, aggregation: str) -> torch.Tensor:
    """[L, D] -> [L]: L2 norm (magnitude only) or signed sum over the embedding dimension."""
    if aggregation == "l2":
        return attributions.norm(dim=-1)
    return attributions.sum(dim=-1)


def normalise(scores: torch.Tensor, aggregation: str) -> torch.Tensor:
    if aggregation == "l2":
        total = float(scores.sum())
        return scores / total if total > 0 else torch.zeros_like(scores)
    peak = float(scores.abs().max())
    return scores / peak if peak > 0 else torch.zeros_like(scores)


def normalise_attention(weights: torch.Tensor) -> torch.Tensor:
    """Share of attention over positions 1..L-1: the first token soaks up attention whatever it says."""
    if weights.numel() == 1:
        return torch.ones_like(weights)
    shown = weights.clone()
    shown[0] = 0.0
    total = float(shown.sum())
    return shown / total if total > 0 else shown


def _floats(values: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in values.tolist())


# --- methods --------------------------------------------------------------------------------------


def _attention(loaded: LoadedModel, context_ids: Sequence[int], target_id: int, last_layer_only: bool) -> dict:
    row = attention.attention_row(loaded, context_ids, last_layer_only)
    over = "last layer, mean over heads" if last_layer_only else "mean over heads and layers"
    note = ATTENTION_SINK_NOTE if len(context_ids) > 1 else "a single context token gets all attention"
    return {
        "scores": row.weights,
        "normalized": normalise_attention(row.weights),
        "aggregation": f"attention of the last position, {over}; {note}",
        "target_logprob": float(row.logprobs[target_id]),
        "fell_back_to_cpu": row.fell_back_to_cpu,
    }


def _gradient_slices(
    loaded: LoadedModel, context_ids: Sequence[int], target_id: int, foil_id: int | None, method: str, steps: int
) -> Iterator[Progress | gradients.GradientAttribution]:
    if method == "saliency":
        yield gradients.saliency(loaded, context_ids, target_id, foil_id)
    elif method == "input_x_gradient":
        yield gradients.input_x_gradient(loaded, context_ids, target_id, foil_id)
    else:
        yield from gradients.integrated_gradients_slices(loaded, context_ids, target_id, steps, foil_id)


def _gradient(out: gradients.GradientAttribution, method: str, aggregation: str, steps: int) -> dict:
    scores = reduce_embedding(out.attributions, aggregation)
    result = {
        "scores": scores,
        "normalized": normalise(scores, aggregation),
        "aggregation": AGGREGATION_NAMES[aggregation],
        "target_logprob": out.target_logprob,
        "signed": aggregation == "sum",
    }
    if method == "integrated_gradients":
        result |= {"completeness_error": out.completeness_error, "steps": steps, "baseline": gradients.IG_BASELINE}
    return result


def _ablation(out: ablation.AblationScores) -> dict:
    return {
        "scores": out.scores,
        "normalized": normalise(out.scores, "sum"),
        "aggregation": ABLATION_NAME,
        "target_logprob": out.value,
        "signed": True,
        "baseline": f"token id {out.baseline_id} (the tokenizer's pad token, else its eos token)",
    }


def _method_slices(
    loaded: LoadedModel, context_ids: Sequence[int], target_id: int, foil_id: int | None, method: str, **options
) -> Iterator[Progress | dict]:
    """Progress after each slice of one method's model work, then its parts of the result (a dict)."""
    if method == "attention":
        yield _attention(loaded, context_ids, target_id, options["last_layer_only"])
        return
    if method == "ablation":
        work, finish = ablation.ablation_slices(loaded, context_ids, target_id, foil_id), _ablation
    else:
        steps = options["ig_steps"]
        work = _gradient_slices(loaded, context_ids, target_id, foil_id, method, steps)
        finish = functools.partial(_gradient, method=method, aggregation=options["aggregation"], steps=steps)
    for out in work:
        yield out if isinstance(out, Progress) else finish(out)


def compute_slices(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    target_id: int,
    method: str,
    foil_id: int | None = None,
    **options,
) -> Iterator[Progress | AttributionResult]:
    """Run one method with no caching (validated input expected): Progress after each slice, then the result.

    Options: `aggregation`, `ig_steps`, `last_layer_only`. Each `next()` is one slice of model work that
    leaves the model as it found it (see `LANE.sliced`); the faithfulness numbers come with the last one.
    """
    start = time.perf_counter()
    for parts in _method_slices(loaded, context_ids, target_id, foil_id, method, **options):
        if isinstance(parts, Progress):
            yield parts
    scores, normalized = parts.pop("scores"), parts.pop("normalized")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{method} produced non-finite scores for this context (numerical overflow)")
    shown = _floats(normalized)
    yield AttributionResult(
        method=method,
        scores=_floats(scores),
        normalized=shown,
        target_id=int(target_id),
        contrast_token_id=foil_id,
        faithfulness=faithfulness(loaded, context_ids, shown, parts["target_logprob"], target_id, foil_id),
        elapsed_s=time.perf_counter() - start,
        **parts,
    )


# --- cache ----------------------------------------------------------------------------------------

_cache: BoundedCache[tuple, AttributionResult] = BoundedCache(max_entries=CACHE_ENTRIES)


def clear_cache() -> None:
    """Forget cached results, context KV caches and the CPU fallback copy (tests and benchmarks start cold)."""
    _cache.clear()
    attention.CONTEXT_KV.clear()
    attention.forget_cpu_copy()


def attribute_slices(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    target_id: int,
    method: str,
    *,
    aggregation: str = "l2",
    ig_steps: int = 16,
    last_layer_only: bool = False,
    contrast_token_id: int | None = None,
    use_cache: bool = True,
) -> Iterator[Progress | AttributionResult]:
    """`attribute` one slice per `next()`: Progress after each slice of model work, the result last.

    Validation happens on the first `next()` (ValueError). Run it through `LANE.sliced(...)` so other
    requests use the model between slices; closing the generator stops the work.
    """
    context_ids = [token if (i := as_int(token)) is None else i for token in context_ids]
    foil = contrast_token_id
    validate(loaded, context_ids, target_id, method, aggregation, ig_steps, foil)
    target_id, ig_steps = operator.index(target_id), operator.index(ig_steps)
    foil = None if foil is None else operator.index(foil)
    options = {"aggregation": aggregation, "ig_steps": ig_steps, "last_layer_only": bool(last_layer_only)}
    key = (loaded.key, tuple(context_ids), target_id, foil, method, *options.values())
    if use_cache and (hit := _cache.get(key)) is not None:
        yield hit
        return
    for item in compute_slices(loaded, context_ids, target_id, method, foil, **options):
        yield item
    if use_cache:
        _cache.put(key, item)


def attribute(
    loaded: LoadedModel, context_ids: Sequence[int], target_id: int, method: str, **options
) -> AttributionResult:
    """Attribute log p(target_id | context_ids) to each context token with `method`, in one go.

    f is log p(target_id | context_ids) at the last position, minus log p(contrast_token_id | context_ids)
    when that foil is given (not for attention, which does not depend on the target). Options (keywords of
    `attribute_slices`): `aggregation` reduces the embedding dimension of gradient methods ("l2" or
    "sum"); attention averages heads and layers instead (`last_layer_only`: the last layer), ablation
    needs neither, and `ig_steps` is used by integrated gradients only. Raises ValueError for an empty
    context, ids outside the vocabulary, an unknown method or aggregation, `ig_steps` outside 2..256, or
    a foil equal to the target. `use_cache=False` recomputes and does not store the result.
    """
    for item in attribute_slices(loaded, context_ids, target_id, method, **options):
        result = item
    return result
