"""The public attribution entry point: validate a request, run one method, reduce and normalise, cache.

`attribute` answers "which context tokens does the choice of `target_id` after `context_ids` depend on?"
with one of `METHODS`. Gradient methods return one vector per token, reduced over the embedding
dimension as named by `aggregation`; attention is averaged over heads and layers. Results are cached
per request in a small LRU, so switching back to an earlier view costs nothing.
"""

from __future__ import annotations

import operator
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from attribution import attention, gradients
from decoding.lane import Progress
from decoding.model import LoadedModel

METHODS = ("attention", "saliency", "input_x_gradient", "integrated_gradients")
AGGREGATIONS = ("l2", "sum")
IG_STEPS_RANGE = (2, 256)
CACHE_ENTRIES = 64

AGGREGATION_NAMES = {
    "l2": "L2 norm over the embedding dimension, scaled to sum to 1 (Inseq convention)",
    "sum": "signed sum over the embedding dimension, divided by the largest |score| (Captum convention)",
}
ATTENTION_SINK_NOTE = "position 0 (attention sink) excluded and the rest renormalised to sum to 1"


@dataclass(frozen=True)
class AttributionResult:
    """One attribution of `target_id` to every context token; `scores` raw, `normalized` for display."""

    method: str
    scores: tuple[float, ...]
    normalized: tuple[float, ...]
    aggregation: str
    target_id: int
    target_logprob: float
    elapsed_s: float
    signed: bool = False  # scores can be negative (signed sum of gradients), else magnitudes or attention shares
    fell_back_to_cpu: bool = False
    completeness_error: float | None = None
    steps: int | None = None
    baseline: str | None = None

    def as_dict(self) -> dict:
        data = dict(self.__dict__)
        data["scores"] = list(self.scores)
        data["normalized"] = list(self.normalized)
        return data


# --- validation -----------------------------------------------------------------------------------


def _as_int(value: object) -> int | None:
    """The integer a token id stands for (numpy and torch integers too), or None; bools are not ids."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")


def validate(
    loaded: LoadedModel, context_ids: Sequence[int], target_id: int, method: str, aggregation: str, ig_steps: int
) -> None:
    """Raise ValueError naming the bad value and the accepted range; touches nothing on the model."""
    if len(context_ids) == 0:
        raise ValueError("context_ids is empty: attribution needs at least one context token")
    vocab = loaded.vocab_size
    embed_rows = int(loaded.model.get_input_embeddings().weight.shape[0])
    for position, token in enumerate(context_ids):
        if _as_int(token) is None or not 0 <= token < embed_rows:
            raise ValueError(
                f"context token {token!r} at position {position} is outside the vocabulary [0, {embed_rows})"
            )
    if len(context_ids) > loaded.context_length:
        raise ValueError(f"context has {len(context_ids)} tokens; the model accepts at most {loaded.context_length}")
    if _as_int(target_id) is None or not 0 <= target_id < vocab:
        raise ValueError(f"target_id {target_id!r} is outside the vocabulary [0, {vocab})")
    _check_choice("attribution method", method, METHODS)
    _check_choice("aggregation", aggregation, AGGREGATIONS)
    low, high = IG_STEPS_RANGE
    if _as_int(ig_steps) is None or not low <= ig_steps <= high:
        raise ValueError(f"ig_steps {ig_steps!r} is outside the accepted range {low}..{high}")


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
    loaded: LoadedModel, context_ids: Sequence[int], target_id: int, method: str, steps: int
) -> Iterator[Progress | gradients.GradientAttribution]:
    if method == "saliency":
        yield gradients.saliency(loaded, context_ids, target_id)
    elif method == "input_x_gradient":
        yield gradients.input_x_gradient(loaded, context_ids, target_id)
    else:
        yield from gradients.integrated_gradients_slices(loaded, context_ids, target_id, steps)


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


def compute_slices(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    target_id: int,
    method: str,
    aggregation: str,
    ig_steps: int,
    last_layer_only: bool,
) -> Iterator[Progress | AttributionResult]:
    """Run one method with no caching (validated input expected): Progress after each slice, then the result.

    Each `next()` is one slice of model work that leaves the model as it found it (see `LANE.sliced`).
    """
    start = time.perf_counter()
    if method == "attention":
        parts = _attention(loaded, context_ids, target_id, last_layer_only)
    else:
        for out in _gradient_slices(loaded, context_ids, target_id, method, ig_steps):
            if isinstance(out, Progress):
                yield out
        parts = _gradient(out, method, aggregation, ig_steps)
    scores, normalized = parts.pop("scores"), parts.pop("normalized")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{method} produced non-finite scores for this context (numerical overflow)")
    yield AttributionResult(
        method=method,
        scores=_floats(scores),
        normalized=_floats(normalized),
        target_id=int(target_id),
        elapsed_s=time.perf_counter() - start,
        **parts,
    )


# --- cache ----------------------------------------------------------------------------------------

_cache: OrderedDict[tuple, AttributionResult] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget cached results, prefix KV caches and the CPU fallback copy (tests and benchmarks start cold)."""
    with _cache_lock:
        _cache.clear()
    attention.PREFIX_CACHES.clear()
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
    use_cache: bool = True,
) -> Iterator[Progress | AttributionResult]:
    """`attribute` one slice per `next()`: Progress after each slice of model work, the result last.

    Validation happens on the first `next()` (ValueError). Run it through `LANE.sliced(...)` so other
    requests use the model between slices; closing the generator stops the work.
    """
    context_ids = [token if (i := _as_int(token)) is None else i for token in context_ids]
    validate(loaded, context_ids, target_id, method, aggregation, ig_steps)
    target_id, ig_steps = operator.index(target_id), operator.index(ig_steps)
    key = (loaded.key, tuple(context_ids), target_id, method, aggregation, ig_steps, bool(last_layer_only))
    if use_cache:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                yield _cache[key]
                return
    for item in compute_slices(loaded, context_ids, target_id, method, aggregation, ig_steps, last_layer_only):
        yield item
    if use_cache:
        with _cache_lock:
            _cache[key] = item
            while len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)


def attribute(
    loaded: LoadedModel, context_ids: Sequence[int], target_id: int, method: str, **options
) -> AttributionResult:
    """Attribute log p(target_id | context_ids) to each context token with `method`, in one go.

    f is log p(target_id | context_ids) at the last position. Options (keywords of `attribute_slices`):
    `aggregation` reduces the embedding dimension of gradient methods ("l2" or "sum"); attention averages
    heads and layers instead (`last_layer_only`: the last layer), and `ig_steps` is used by integrated
    gradients only. Raises ValueError for an empty context, ids outside the vocabulary, an unknown method
    or aggregation, or `ig_steps` outside 2..256. `use_cache=False` recomputes and does not store the result.
    """
    for item in attribute_slices(loaded, context_ids, target_id, method, **options):
        result = item
    return result
