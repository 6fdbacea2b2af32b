"""Attention attribution: how strongly the last context position attends to every context token.

Only the last row of each attention matrix is needed. The context before the last token therefore runs
through a KV cache with the model's own fast attention (sdpa), and only the last token runs with eager
attention and `output_attentions=True` (under sdpa transformers returns no weights). Those KV caches of
context prefixes (`CONTEXT_KV`, shared with ablation) live in a small bounded cache and are cropped or
extended, so attributing another token of the same text reruns only the tokens that changed. A device that
cannot give attention weights is retried on a CPU copy.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attribution.guard import attention_implementation, borrowed
from backends.bounded import BoundedCache
from backends.interventions import edits_on
from backends.model import LoadedModel
from backends.model.memo import drop, per_model
from backends.prefix_cache import PREFIX_CACHE
from backends.prefix_search import common_prefix

CONTEXT_KV_ENTRIES = 2


@dataclass(frozen=True)
class AttentionRow:
    """The averaged last attention row (float32, CPU) and the model's next-token log-probabilities."""

    weights: torch.Tensor
    logprobs: torch.Tensor
    fell_back_to_cpu: bool


class ContextKVCache:
    """KV caches of recent context prefixes, keyed by (model key, token ids); cropped or extended on reuse."""

    def __init__(self, max_entries: int = CONTEXT_KV_ENTRIES) -> None:
        self._entries: BoundedCache[tuple[object, tuple[int, ...]], object] = BoundedCache(max_entries=max_entries)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, model: torch.nn.Module, model_key: object, prefix: tuple[int, ...]):
        """A DynamicCache holding exactly `prefix`, built from the entry sharing the longest start with it."""
        from transformers import DynamicCache

        cache, have = DynamicCache(config=model.config), 0
        # a copy, made outside this lock, computed under the edits this thread applies now
        shared, shared_len = PREFIX_CACHE.copy_prefix(model_key[0], prefix, edits_on(model))
        with self._entries.atomic():  # the entry found is the entry taken
            best, best_len = None, 0
            for key in self._entries:
                if key[0] == model_key and (n := common_prefix(key[1], prefix)) > best_len:
                    best, best_len = key, n
            if shared is not None and shared_len > best_len and _on(shared, model.device):
                # The decoding engine's cache already holds this text (it was decoded there): start from it.
                best, cache, have = None, shared, shared_len
            if best is not None:
                cache = self._entries.pop(best)
        if best is not None:
            try:
                cache.crop(best_len - cache.get_seq_length())
                have = best_len
            except (RuntimeError, ValueError):  # e.g. a sliding-window layer that cannot roll back
                cache = DynamicCache(config=model.config)
        if have < len(prefix):
            rest = torch.tensor([prefix[have:]], device=model.device)
            with torch.no_grad():
                model(input_ids=rest, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return cache

    def put(self, model_key: object, prefix: tuple[int, ...], cache: object) -> None:
        self._entries.put((model_key, prefix), cache)


CONTEXT_KV = ContextKVCache()


def _on(cache, device: torch.device) -> bool:
    """Whether a cache's tensors live on `device` (the CPU fallback cannot use the GPU's cache)."""
    layer = cache.layers[0] if cache.layers else None
    return layer is not None and layer.keys is not None and layer.keys.device.type == device.type


def _give_back(model_key: object, prefix: tuple[int, ...], cache) -> None:
    """Keep the cache for the next request, holding the prefix only (unless it cannot roll back)."""
    try:
        cache.crop(-1)
    except (RuntimeError, ValueError):  # a sliding-window layer past its window: just drop it
        return
    CONTEXT_KV.put(model_key, prefix, cache)


def _eager_last_row(
    model: torch.nn.Module, model_key: object, context_ids: Sequence[int], last_layer_only: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean attention row over the context [L], log-probs [V]) for the last position of `context_ids`."""
    prefix = tuple(context_ids[:-1])
    cache = CONTEXT_KV.take(model, model_key, prefix) if prefix else None
    last = torch.tensor([[context_ids[-1]]], device=model.device)
    with torch.no_grad(), attention_implementation(model, "eager"):
        out = model(input_ids=last, past_key_values=cache, use_cache=cache is not None, output_attentions=True)
    if cache is not None:
        _give_back(model_key, prefix, cache)
    layers = [a for a in (out.attentions or ()) if a is not None]
    if not layers:
        raise RuntimeError(f"{type(model).__name__} returned no attention weights")
    if last_layer_only:
        layers = layers[-1:]
    rows = torch.stack([a[0, :, -1, :].float() for a in layers])  # [layers, heads, L]
    weights = rows.mean(dim=(0, 1)).cpu()
    return weights, out.logits[0, -1].float().log_softmax(-1).cpu()


CPU_COPY = "attention CPU copy"  # its name in the per-model memo: one copy at most, as big as the model


def forget_cpu_copy() -> None:
    drop(CPU_COPY)


def cpu_copy(loaded: LoadedModel) -> torch.nn.Module:
    """A float32 CPU copy of the model, made once per model (see `_copy_to_cpu`)."""
    return per_model(loaded, CPU_COPY, _copy_to_cpu)


def _copy_to_cpu(loaded: LoadedModel) -> torch.nn.Module:
    """Made tensor by tensor, so the device never holds two copies."""
    copies = {}
    for tensor in (*loaded.model.parameters(), *loaded.model.buffers()):
        moved = tensor.detach().to("cpu")
        moved = moved.float() if moved.is_floating_point() else moved
        copies[id(tensor)] = (
            torch.nn.Parameter(moved, requires_grad=False) if isinstance(tensor, torch.nn.Parameter) else moved
        )
    return copy.deepcopy(loaded.model, copies).eval()


def attention_row(loaded: LoadedModel, context_ids: Sequence[int], last_layer_only: bool) -> AttentionRow:
    """The last position's attention over the context, averaged over heads and layers (or the last layer)."""
    try:
        with borrowed(loaded.model) as model:
            key = (loaded.key, str(loaded.device), edits_on(model))  # keys and values under other edits differ
            weights, logprobs = _eager_last_row(model, key, context_ids, last_layer_only)
        return AttentionRow(weights, logprobs, fell_back_to_cpu=False)
    except Exception:
        if loaded.device.type == "cpu" or edits_on(loaded.model):  # the CPU copy does not carry the edits
            raise
    # Some accelerator kernels cannot return attention weights: the CPU copy always can
    with borrowed(cpu_copy(loaded)) as model:
        weights, logprobs = _eager_last_row(model, (loaded.key, "cpu", ()), context_ids, last_layer_only)
    return AttentionRow(weights, logprobs, fell_back_to_cpu=True)
