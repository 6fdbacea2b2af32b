"""The server-wide prefix KV cache, shared by all sessions and branches.

The model is a pure function of the token ids, so attention keys/values and final logits are cached
by token-id prefix. A request reuses the longest cached prefix and runs only the new tokens:
stepping extends an entry in place, rewinding and branching copy the shared part and crop it. The
cache is an LRU bounded in bytes (env NEXTTOKEN_KV_CACHE_MB, default 512) and is emptied when the
model changes. Model work runs under the model lane (backends.lane); a long prefill runs in chunks of
`PREFILL_CHUNK` tokens and lets waiting requests go between chunks. The entries live in a `BoundedCache`
(backends.bounded): a search over them and what it takes run under its lock, model work never does.
`batch_logits` runs rows of equal length after one cached prefix in one batched forward (the look-ahead
tree's levels, prefetch), optionally keeping each row as an entry of its own.

Model edits (backends.interventions) are part of every key, and each forward runs with its request's edits
applied (removed before the lane pauses). An edited step's edited and unedited rows are one 2-row entry that
the next step extends (backends.two_rows); a one-row reader takes its row as a view. A mean ablation depends on
every position, so the context reruns from its layer up at every step, fed by the unedited layers below it, whose
output there is an entry extended by the new tokens only (backends.lower_layers); only its logits are kept.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache

from backends import kv_rows
from backends.bounded import BoundedCache
from backends.interventions import NO_EDITS, Edits, applied, first_layer, whole_context
from backends.lane import LANE
from backends.lower_layers import captured, from_layer
from backends.model import LoadedModel
from backends.model.memo import per_model
from backends.prefix_search import below_at, longest
from backends.prefix_take import take_longest, take_pair
from backends.two_rows import NARROW_MAX, narrow_products, two_row_pass

DEFAULT_MAX_MB = 512
# Tokens per forward pass of a prefill: ~0.5-1 s on a 2-core CPU for SmolLM2-135M, so a step waits at most that
PREFILL_CHUNK = 256
_cache_names = (f"prefix cache {n}" for n in itertools.count(1))  # each cache's name in the per-model memo


@dataclass
class CacheStats:
    """Counters for tests and benchmarks."""

    forward_calls: int = 0
    tokens_run: int = 0
    logits_hits: int = 0


class PrefixCache:
    """LRU of (token-id prefix -> DynamicCache) and (prefix -> next-token logits), bounded in bytes."""

    def __init__(self, max_bytes: int | None = None, shared: bool = True) -> None:
        if max_bytes is None:
            max_bytes = int(float(os.environ.get("NEXTTOKEN_KV_CACHE_MB", DEFAULT_MAX_MB)) * 2**20)
        self.max_bytes = max_bytes
        # ("kv" or "pair", ids, edits) -> DynamicCache, ("logits", ids, edits) -> the logits row after ids and
        # ("below", ids, layer) -> the unedited input to that decoder layer at every position of ids
        self._entries: BoundedCache[tuple[str, tuple[int, ...], Edits], DynamicCache | torch.Tensor] = BoundedCache(
            max_bytes=max_bytes, sizeof=kv_rows.entry_bytes
        )
        self._model_key: int | None = None  # whose keys and values the entries are
        self._memo_name = next(_cache_names)
        # False: the cache of a model outside the store (a reference, backends.reference), which must not take
        # the per-model memo from the current model; it follows its one model by key instead
        self._shared = shared
        self.stats = CacheStats()

    @property
    def nbytes(self) -> int:
        return self._entries.stats().size

    def clear(self) -> None:
        self._entries.clear()

    def logits(self, loaded: LoadedModel, ids: Sequence[int], last_n: int = 1, edits: Edits = NO_EDITS) -> torch.Tensor:
        """Float32 logits [last_n, vocab]: row j predicts the token after ids[: len(ids) - last_n + 1 + j]."""
        ids = tuple(int(i) for i in ids)
        if not 1 <= last_n <= len(ids):
            raise ValueError(f"last_n {last_n} must be between 1 and the number of ids ({len(ids)})")
        with LANE.hold():
            self._own(loaded)
            if last_n == 1 and (hit := self._entries.get(("logits", ids, edits))) is not None:
                self.stats.logits_hits += 1
                return hit.unsqueeze(0)
            if whole_context(edits):
                return torch.stack(
                    [self._whole(loaded, ids[: len(ids) - last_n + 1 + j], edits) for j in range(last_n)]
                )
            return self._run(loaded, ids, last_n, edits)

    def _whole(self, loaded: LoadedModel, ids: tuple[int, ...], edits: Edits) -> torch.Tensor:
        """The logits after `ids` under edits that need the whole context (kept): the layers from the first edit up
        rerun over the context, fed by the unedited layers below it, which run the new tokens only."""
        if (hit := self._entries.get(("logits", ids, edits))) is not None:
            self.stats.logits_hits += 1
            return hit
        layer = first_layer(edits)
        whole = torch.tensor([ids], dtype=torch.long, device=loaded.device)
        with from_layer(loaded.model, layer, self._below(loaded, ids, layer)):
            row = self._forward(loaded, whole, None, edits)[0][0]
        with self._entries.atomic():
            if self._model_key == loaded.key:
                self._entries.put(("logits", ids, edits), row)
        return row

    def _below(self, loaded: LoadedModel, ids: tuple[int, ...], layer: int) -> torch.Tensor:
        """The unedited model's input to decoder layer `layer` at every position of `ids` [1, len(ids), d_model],
        kept as an entry ("below", ids, layer) that the next token's call extends: the unedited prefix runs the
        new tokens only (its keys, values and logits cached as an unedited step's)."""
        with self._entries.atomic():
            key, _, known = longest(self._entries, ids, len(ids), below_at(layer))
            kept = self._entries.peek(key) if key is not None else None
        if key is not None and known == len(ids):
            return kept[:, :known]
        parts: list[torch.Tensor] = []
        with captured(loaded.model, layer, parts):
            self._run(loaded, ids, 1, NO_EDITS, limit=known)
        new = torch.cat(parts, dim=1)
        start = len(ids) - new.shape[1]
        hidden = torch.cat([kept[:, :start], new], dim=1) if start else new
        with self._entries.atomic():
            if self._model_key == loaded.key:
                if key is not None and len(key[1]) == start:  # extended: the shorter one is not needed again
                    self._entries.pop(key)
                self._entries.put(("below", ids, layer), hidden)
        return hidden

    def with_unedited(self, loaded: LoadedModel, ids: Sequence[int], edits: Edits) -> None:
        """The logits after `ids` under position-wise `edits` (row 0) and without them (row 1) in ONE forward, cached,
        when both extend cached prefixes of one length (else left to `logits`); their keys and values stay one 2-row
        entry ("pair", ids, edits) that the next step extends, with no stacking or splitting per step."""
        ids = tuple(int(i) for i in ids)
        with LANE.hold():
            self._own(loaded)
            if whole_context(edits) or any(("logits", ids, e) in self._entries for e in (edits, NO_EDITS)):
                return
            with self._entries.atomic():
                start, pair = take_pair(self._entries, ids, edits, loaded.model.config, PREFILL_CHUNK)
            if pair is None:
                return
            new = torch.tensor([ids[start:]], dtype=torch.long, device=loaded.device)
            logits, kv = self._forward(loaded, new, pair, edits, row=0, fork=first_layer(edits))
            with self._entries.atomic():
                if self._model_key != loaded.key:
                    return
                self._entries.put(("pair", ids, edits), kv)
                for index, e in enumerate((edits, NO_EDITS)):
                    self._entries.put(("logits", ids, e), logits[index].clone())

    def _forward(
        self, loaded: LoadedModel, new: torch.Tensor, kv: DynamicCache | None, edits: Edits, row=None, fork=None
    ):
        """One forward of `new` after `kv` under `edits` (on batch row `row` only, when given; with `fork`, its one
        row runs twice from that decoder layer on): the last logits of each row (float32, CPU), and the KV."""
        with torch.no_grad(), _products(loaded.model, new, fork), applied(loaded.model, edits, row):
            out = loaded.model(input_ids=new, past_key_values=kv, use_cache=kv is not None, logits_to_keep=1)
        self.stats.forward_calls += 1
        self.stats.tokens_run += new.numel()
        return out.logits[:, -1].float().cpu(), out.past_key_values

    def _own(self, loaded: LoadedModel) -> None:
        """Make the entries `loaded`'s: the memo tells when the store's model changed (and empties this cache as
        soon as the store switches); a cache of its own model only compares keys."""
        if self._shared:
            per_model(loaded, self._memo_name, self._start_model, release=_forget_model)
        elif self._model_key != loaded.key:
            self._start_model(loaded)

    def _start_model(self, loaded: LoadedModel) -> weakref.ref:
        """The first request for a model: the previous model's entries go, the new model owns the cache."""
        self.clear()
        self._model_key = loaded.key
        return weakref.ref(self)  # weak: the memo must not keep a discarded cache alive

    def copy_prefix(
        self, model_key: int, ids: Sequence[int], edits: Edits = NO_EDITS
    ) -> tuple[DynamicCache | None, int]:
        """A private copy of the KV of the longest prefix of `ids` under `edits` (cropped to it), and its length.

        For callers that extend a cache themselves (attention attribution): the shared entry stays as it is.
        """
        ids = tuple(int(i) for i in ids)
        with self._entries.atomic():
            if self._model_key != model_key or whole_context(edits):  # under a mean no prefix is reused
                return None, 0
            length, kv = take_longest(self._entries, ids, len(ids), edits, None, copied=True)
        return (kv, length) if length else (None, 0)

    def serves(self, loaded: LoadedModel) -> bool:
        """Whether the entries are this model's (False once another model was loaded): background work checks."""
        return self._model_key == loaded.key

    def cached(self, ids: Sequence[int], edits: Edits = NO_EDITS) -> bool:
        """Whether the next-token logits after `ids` under `edits` are cached (a call for them runs no model)."""
        return ("logits", tuple(int(i) for i in ids), edits) in self._entries

    def batch_logits(
        self,
        loaded: LoadedModel,
        base: Sequence[int],
        rows: Sequence[Sequence[int]],
        keep: bool = False,
        edits: Edits = NO_EDITS,
    ) -> torch.Tensor:
        """Float32 logits [len(rows), vocab]: row i predicts the token after base + rows[i]; ONE batched forward.

        The rows all have the same length, so they share base's cached KV expanded to the batch and need no
        padding (base is run and cached first if it is not). With `keep` each row's KV and logits become
        entries of their own (prefetch), counted in the byte bound like any other.
        """
        base, rows = tuple(int(i) for i in base), [tuple(int(i) for i in row) for row in rows]
        if not rows or not rows[0] or len({len(row) for row in rows}) != 1:
            raise ValueError(f"rows {rows!r} must be one or more token-id lists of the same length >= 1")
        with LANE.hold():
            self._own(loaded)
            if whole_context(edits):  # every row runs whole: no prefix is shared under a mean over positions
                kv, start = None, 0
            else:
                kv, start = self.copy_prefix(loaded.key, base, edits)
                if base and start < len(base):  # run and cache base once, so later batches start from it
                    self._run(loaded, base, 1, edits)
                    kv, start = self.copy_prefix(loaded.key, base, edits)
                if kv is None:
                    kv = DynamicCache(config=loaded.model.config)
                kv.batch_repeat_interleave(len(rows))
            new = torch.tensor([[*base[start:], *row] for row in rows], dtype=torch.long, device=loaded.device)
            logits, kv = self._forward(loaded, new, kv, edits)
            with self._entries.atomic():
                if keep and self._model_key == loaded.key:
                    kv_rows.keep(self._entries, base, rows, (kv, logits), edits, loaded.model.config)
        return logits

    def _run(self, loaded: LoadedModel, ids: tuple[int, ...], last_n: int, edits: Edits, limit: int | None = None):
        """The last `last_n` logits after `ids` from the longest cached prefix (no longer than `limit`), extended."""
        with self._entries.atomic():
            limit = len(ids) - last_n if limit is None else min(limit, len(ids) - last_n)
            start, kv = take_longest(self._entries, ids, limit, edits, loaded.model.config)
        out = self._prefill(loaded, kv, ids, start, last_n, edits)
        self.stats.tokens_run += len(ids) - start
        logits = out.logits[0, -last_n:].float().cpu()
        with self._entries.atomic():
            if self._model_key != loaded.key:  # the model changed while the prefill let others go first
                return logits
            self._entries.put(("kv", ids, edits), out.past_key_values)
            for j in range(last_n):
                self._entries.put(("logits", ids[: len(ids) - last_n + 1 + j], edits), logits[j])
        return logits

    def _prefill(self, loaded: LoadedModel, kv: DynamicCache, ids: tuple[int, ...], start: int, last_n: int, edits):
        """Run ids[start:] into `kv` in chunks of PREFILL_CHUNK tokens, pausing the lane between chunks.

        The last chunk keeps the last `last_n` logits, so it is at least that long. The chunks' logits
        equal one pass's: each chunk attends to the keys and values of all tokens before it.
        """
        bounds = list(range(start, len(ids), PREFILL_CHUNK))
        while len(bounds) > 1 and len(ids) - bounds[-1] < last_n:
            bounds.pop()
        for i, begin in enumerate(bounds):
            if i:
                LANE.pause()  # our KV is private until stored: others may use the model meanwhile
            end = bounds[i + 1] if i + 1 < len(bounds) else len(ids)
            new = torch.tensor([ids[begin:end]], dtype=torch.long, device=loaded.device)
            with torch.no_grad(), applied(loaded.model, edits):  # removed before the lane pauses again
                out = loaded.model(
                    input_ids=new, past_key_values=kv, use_cache=True, logits_to_keep=last_n if end == len(ids) else 1
                )
            self.stats.forward_calls += 1
            kv = out.past_key_values
        return out


def _products(model: nn.Module, new: torch.Tensor, fork: int | None):
    """How a forward's linear layers run: forked at `fork` for an edited pair; in the few-row form for 2 to NARROW_MAX
    new positions (prefetch's candidates, a narrow tree level: ~0.55 x their cost as x @ W^T); else as they are."""
    if fork is not None:
        return two_row_pass(model, fork)
    return narrow_products(model) if 2 <= new.numel() <= NARROW_MAX else contextlib.nullcontext()


def _forget_model(cache_ref: weakref.ref) -> None:
    """Run by the memo when the model changes: the old model's keys and values are freed at once."""
    cache = cache_ref()
    if cache is not None:
        cache.clear()
        cache._model_key = None  # until the next model's first request: work for the old one is not stored


PREFIX_CACHE = PrefixCache()
