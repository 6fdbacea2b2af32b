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
the next step extends (backends.two_rows); a one-row reader takes its row as a view. Under a mean ablation,
which depends on every position, no prefix is extended: each context runs whole and only its logits are kept.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from backends import kv_rows
from backends.bounded import BoundedCache
from backends.interventions import NO_EDITS, Edits, applied, first_layer, whole_context
from backends.lane import LANE
from backends.model import LoadedModel
from backends.model.memo import per_model
from backends.prefix_search import longest, pair_under, row_under
from backends.two_rows import two_row_pass

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
        # ("kv", ids, edits) -> DynamicCache and ("logits", ids, edits) -> the logits row after ids
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
        """The logits after `ids` from one pass over the whole context (edits that need it); the logits are kept."""
        if (hit := self._entries.get(("logits", ids, edits))) is not None:
            self.stats.logits_hits += 1
            return hit
        row = self._forward(loaded, torch.tensor([ids], dtype=torch.long, device=loaded.device), None, edits)[0][0]
        with self._entries.atomic():
            if self._model_key == loaded.key:
                self._entries.put(("logits", ids, edits), row)
        return row

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
                start, pair = self._take_pair(loaded, ids, edits)
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

    def _take_pair(self, loaded: LoadedModel, ids: tuple[int, ...], edits: Edits) -> tuple[int, DynamicCache | None]:
        """The edited and unedited KV of the longest cached prefix of ids[:-1] as one 2-row cache, the caller's now:
        the pair entry itself (taken out: extended in place), a view of a longer one, or two one-row prefixes of
        one length stacked; (0, None) when there is none within one chunk of `ids`."""
        limit = len(ids) - 1
        key, _, start = longest(self._entries, ids, limit, pair_under(edits))
        rows = [longest(self._entries, ids, limit, row_under(e)) for e in (edits, NO_EDITS)]
        if key is not None and start >= max(length for _, _, length in rows) and len(ids) - start <= PREFILL_CHUNK:
            if len(key[1]) == start:
                return start, self._entries.pop(key)
            return start, kv_rows.view(self._entries.peek(key), slice(0, 2), start)
        (edited, e_row, start), (unedited, u_row, other) = rows
        if start != other or not start or len(ids) - start > PREFILL_CHUNK:
            return 0, None
        parts = ((edited, e_row), (unedited, u_row))
        views = [kv_rows.view(self._entries.peek(key), slice(row, row + 1), start) for key, row in parts]
        return start, kv_rows.stacked(views, loaded.model.config, shared=first_layer(edits))

    def _forward(
        self, loaded: LoadedModel, new: torch.Tensor, kv: DynamicCache | None, edits: Edits, row=None, fork=None
    ):
        """One forward of `new` after `kv` under `edits` (on batch row `row` only, when given; with `fork`, its one
        row runs twice from that decoder layer on): the last logits of each row (float32, CPU), and the KV."""
        two_rows = two_row_pass(loaded.model, fork) if fork is not None else contextlib.nullcontext()
        with torch.no_grad(), two_rows, applied(loaded.model, edits, row):
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
            key, row, length = longest(self._entries, ids, len(ids), row_under(edits))
            if key is None or not length:
                return None, 0
            if key[0] == "pair":  # the pair's row alone, copied
                return kv_rows.owned(kv_rows.view(self._entries.peek(key), slice(row, row + 1), length)), length
            kv = copy.deepcopy(self._entries.peek(key))
        kv.crop(length - kv.get_seq_length())
        return kv, length

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
            if keep:
                self._keep_rows(loaded, base, rows, kv, logits, edits)
        return logits

    def _keep_rows(self, loaded: LoadedModel, base: tuple[int, ...], rows, kv, logits, edits: Edits) -> None:
        """Each row of a batched forward as its own KV and logits entries; base's entry stays the most recent."""
        with self._entries.atomic():
            if self._model_key != loaded.key:
                return
            for i, row in enumerate(rows):
                self._entries.put(("logits", (*base, *row), edits), logits[i].clone())
                if kv is None:  # a whole-context pass keeps no keys and values
                    continue
                self._entries.put(("kv", (*base, *row), edits), kv_rows.row(kv, i, loaded.model.config))
            # A step off the candidates extends base: put again, it is evicted last (and searched last, as the
            # entries are searched in the order they were put)
            if (base_kv := self._entries.peek(("kv", base, edits))) is not None:
                self._entries.put(("kv", base, edits), base_kv)

    def _run(self, loaded: LoadedModel, ids: tuple[int, ...], last_n: int, edits: Edits) -> torch.Tensor:
        with self._entries.atomic():
            start, kv = self._take_longest_prefix(loaded, ids, len(ids) - last_n, edits)
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

    def _take_longest_prefix(self, loaded: LoadedModel, ids: tuple[int, ...], limit: int, edits: Edits):
        """The cached KV of the longest prefix of ids (under `edits`) no longer than `limit`, owned by the caller now.

        An entry that is exactly that prefix is taken out of the cache (stepping extends it in place); a longer
        entry is copied and cropped, so the branch it belongs to keeps its own; a pair's row is a view of it.
        """
        key, row, start = longest(self._entries, ids, limit, row_under(edits))
        if key is None or start == 0:
            return 0, DynamicCache(config=loaded.model.config)
        if key[0] == "pair":
            return start, kv_rows.view(self._entries.peek(key), slice(row, row + 1), start)
        if len(key[1]) == start:
            return start, self._entries.pop(key)
        kv = copy.deepcopy(self._entries.peek(key))
        kv.crop(start - kv.get_seq_length())
        return start, kv


def _forget_model(cache_ref: weakref.ref) -> None:
    """Run by the memo when the model changes: the old model's keys and values are freed at once."""
    cache = cache_ref()
    if cache is not None:
        cache.clear()
        cache._model_key = None  # until the next model's first request: work for the old one is not stored


PREFIX_CACHE = PrefixCache()
