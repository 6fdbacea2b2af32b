"""Keys and values of a batch as rows: one cache per batch row, and several one-row caches as one batch.

A batched forward (the look-ahead tree's levels, prefetch, an edited and an unedited row together) runs on one
DynamicCache whose batch rows belong to different token-id prefixes; the prefix cache keeps each row as its own
entry (`keep`) (or an edited and an unedited row as one entry, read row by row through views), and puts rows back
together to extend them in one pass.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from transformers import DynamicCache

from backends.bounded import BoundedCache


def kv_bytes(kv: DynamicCache) -> int:
    return sum(t.numel() * t.element_size() for layer in kv.layers for t in (layer.keys, layer.values) if t is not None)


def entry_bytes(value: DynamicCache | torch.Tensor) -> int:
    """A prefix cache entry's size against its byte bound: a prefix's keys and values, or its logits row."""
    return kv_bytes(value) if isinstance(value, DynamicCache) else value.numel() * value.element_size()


def row(kv: DynamicCache, index: int, config: object) -> DynamicCache:
    """Batch row `index` of `kv` as a cache of its own (copied: the batch can be freed)."""
    single = DynamicCache(config=config)
    for layer_index, layer in enumerate(kv.layers):
        single.update(layer.keys[index : index + 1], layer.values[index : index + 1], layer_index)
    return single


def view(kv: DynamicCache, rows: slice, length: int) -> DynamicCache:
    """Batch rows `rows` of `kv` and their first `length` positions as a cache of their own, sharing kv's memory.

    A layer of one row is every row's (a pair's layers below its first edit). Safe to extend: a DynamicCache never
    writes a tensor in place (a forward concatenates into new tensors), so extending the view leaves `kv` as it
    was. Not to be kept as an entry: it holds all of kv's memory.
    """
    out = copy.copy(kv)
    out.layers = [copy.copy(layer) for layer in kv.layers]
    for layer in out.layers:
        if layer.is_initialized and layer.keys.shape[0] > 1:  # a slice selects a view, an index tensor would copy
            layer.keys, layer.values = layer.keys[rows], layer.values[rows]
    out.crop(length - out.get_seq_length())
    return out


def stacked(rows: Sequence[DynamicCache], config: object, shared: int = 0) -> DynamicCache:
    """One-row caches of the same length as the rows of one batch (copied); the first `shared` layers, the same in
    every row, as one row that all share."""
    batch = DynamicCache(config=config)
    for layer_index, layers in enumerate(zip(*(kv.layers for kv in rows), strict=True)):
        layers = layers[:1] if layer_index < shared else layers
        keys = torch.cat([layer.keys for layer in layers])
        values = torch.cat([layer.values for layer in layers])
        batch.update(keys, values, layer_index)
    return batch


def owned(kv: DynamicCache) -> DynamicCache:
    """`kv` with tensors of its own (a view's rows copied out of the cache it shares memory with)."""
    for layer in kv.layers:
        if layer.is_initialized:
            layer.keys, layer.values = layer.keys.clone(), layer.values.clone()
    return kv


def keep(entries: BoundedCache, base: tuple[int, ...], rows, out: tuple, edits: tuple, config: object) -> None:
    """Each row of a batched forward's `out` (KV, logits) after `base` as its own KV and logits entries; base's
    entry stays the most recent. Run under the entries' lock."""
    kv, logits = out
    for i, ids in enumerate(rows):
        entries.put(("logits", (*base, *ids), edits), logits[i].clone())
        if kv is not None:  # a whole-context pass keeps no keys and values
            entries.put(("kv", (*base, *ids), edits), row(kv, i, config))
    # A step off the candidates extends base: put again, it is evicted last (and searched last, as the entries are
    # searched in the order they were put)
    if (base_kv := entries.peek(("kv", base, edits))) is not None:
        entries.put(("kv", base, edits), base_kv)
