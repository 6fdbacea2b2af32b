"""The public attribution entry point: validate a request, run one method, cache the result.

`attribute` answers "which context tokens does the choice of `target_id` after `context_ids` depend on?"
(with a `contrast_token_id`: "... of `target_id` rather than the foil?") with one of the registry's
methods (`attribution.registry`), whose entry names the runner that does the work in slices. Gradient
methods return one vector per token, reduced over the embedding dimension as named by `aggregation`;
attention is averaged over heads and layers; ablation measures each token's removal; direct logit
attribution scores no tokens and splits the logit over the model's parts (`components`). Every result
with token scores carries its faithfulness (see attribution.faithfulness). Results are cached per request in a small
LRU, so switching back to an earlier view costs nothing.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from attribution import attention, registry
from attribution.direct_logit import LogitComponents
from attribution.faithfulness import Faithfulness, faithfulness
from attribution.runners import Job
from attribution.validation import as_int, validate
from backends.bounded import BoundedCache
from backends.interventions import NO_EDITS, Edits, edited_slices, whole_context
from backends.lane import Progress
from backends.model import LoadedModel

CACHE_ENTRIES = 64
SPLIT_CONTEXT = ("attention", "ablation")  # methods that run the last token on cached keys and values of the rest


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
    components: LogitComponents | None = None  # direct logit attribution's parts of the logit (its scores are empty)

    def as_dict(self) -> dict:
        """As JSON values; `components` only where the method has them (the token-score methods' answers lack it)."""
        data = dict(self.__dict__)
        data["scores"] = list(self.scores)
        data["normalized"] = list(self.normalized)
        data["faithfulness"] = None if self.faithfulness is None else self.faithfulness.as_dict()
        components = data.pop("components")
        return data if components is None else data | {"components": components.as_dict()}


def _floats(values: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in values.tolist())


def compute_slices(
    loaded: LoadedModel,
    context_ids: Sequence[int],
    target_id: int,
    method: str,
    foil_id: int | None = None,
    aggregation: str = registry.DEFAULT_AGGREGATION,
    **parameters,
) -> Iterator[Progress | AttributionResult]:
    """Run one method with no caching (validated input expected): Progress after each slice, then the result.

    `parameters`: every registry parameter (`ig_steps`, `last_layer_only`). Each `next()` is one slice of
    model work that leaves the model as it found it (see `LANE.sliced`); the faithfulness numbers come with
    the last one. The method's registry entry says which runner does the work and whether the scores are signed.
    """
    start, entry = time.perf_counter(), registry.METHODS[method]
    for parts in entry.run(Job(loaded, context_ids, target_id, foil_id, aggregation, parameters)):
        if isinstance(parts, Progress):
            yield parts
    scores, normalized = parts.pop("scores"), parts.pop("normalized")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{method} produced non-finite scores for this context (numerical overflow)")
    shown = _floats(normalized)
    measured = (  # deleting top-scored tokens: nothing to delete where a method scores no tokens
        faithfulness(loaded, context_ids, shown, parts["target_logprob"], target_id, foil_id)
        if entry.token_scores
        else None
    )
    yield AttributionResult(
        method=method,
        scores=_floats(scores),
        normalized=shown,
        target_id=int(target_id),
        contrast_token_id=foil_id,
        faithfulness=measured,
        elapsed_s=time.perf_counter() - start,
        signed=entry.signed_for(aggregation),
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
    aggregation: str = registry.DEFAULT_AGGREGATION,
    contrast_token_id: int | None = None,
    use_cache: bool = True,
    edits: Edits = NO_EDITS,
    **parameters,
) -> Iterator[Progress | AttributionResult]:
    """`attribute` one slice per `next()`: Progress after each slice of model work, the result last.

    `parameters`: the registry's method parameters (`ig_steps`, `last_layer_only`), each checked, a missing
    one at its default. `edits` (resolved model edits, backends.interventions) apply to every forward and backward
    pass, slice by slice. Validation happens on the first `next()` (ValueError). Run it through
    `LANE.sliced(...)` so other requests use the model between slices; closing the generator stops the work.
    """
    context_ids = [token if (i := as_int(token)) is None else i for token in context_ids]
    foil = contrast_token_id
    checked = validate(loaded, context_ids, target_id, method, aggregation, foil, **parameters)
    if whole_context(edits) and method in SPLIT_CONTEXT:
        raise ValueError(
            f"method {method!r} runs the context's last token apart from the rest, so it cannot take a mean "
            "ablation (a mean over the whole context): use mode zero, or a gradient method"
        )
    options = {"aggregation": aggregation} | checked
    target_id = operator.index(target_id)
    foil = None if foil is None else operator.index(foil)
    key = (loaded.key, tuple(context_ids), target_id, foil, method, edits, *options.values())
    if use_cache and (hit := _cache.get(key)) is not None:
        yield hit
        return
    for item in edited_slices(
        loaded.model, edits, compute_slices(loaded, context_ids, target_id, method, foil, **options)
    ):
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
