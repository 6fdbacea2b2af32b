"""Matcher states per (grammar, completion prefix) and the per-step mask of allowed tokens.

`ConstraintTracker` holds the llguidance tokenizer of one model and an LRU of matcher states, so a decoding
step consumes one token instead of replaying the completion; `ConstraintMask` is the boolean mask of allowed
next tokens and whether the grammar is complete. `tracker_for` gives the current model's tracker.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import llguidance
import llguidance.hf
import llguidance.numpy as llg_numpy
import numpy as np
import torch
from llguidance import LLMatcher

from backends.bounded import BoundedCache
from backends.model import LoadedModel
from backends.model.memo import per_model
from decoding.constraints.errors import TYPE_NAMES, matcher_error
from decoding.constraints.grammar import grammar_for
from decoding.sampling.params import ConstraintSpec

STATE_CAPACITY = 256
GRAMMAR_CAPACITY = 32
_StateKey = tuple[str, tuple[int, ...]]  # (grammar, completion prefix)


@dataclass(frozen=True)
class ConstraintMask:
    """The tokens the constraint allows next, over the model's vocabulary (ids beyond the tokenizer are False)."""

    valid: torch.Tensor
    accepting: bool
    complete: bool
    constraint_type: str


@dataclass(frozen=True)
class TrackerStats:
    """Counters that show the cache at work: a decoding step should add one consumed token and no compile."""

    compiled_grammars: int
    consumed_tokens: int
    state_hits: int
    cached_states: int


class _State:
    """A matcher positioned after one completion prefix, and its mask once computed."""

    __slots__ = ("mask", "matcher")

    def __init__(self, matcher: LLMatcher) -> None:
        self.matcher = matcher
        self.mask: _Mask | None = None


@dataclass(frozen=True)
class _Mask:
    """A cached mask. numpy, not torch: small torch ops wake the intra-op thread pool, and on a busy CPU waiting
    for it costs milliseconds per op, more than llguidance itself."""

    valid: np.ndarray
    accepting: bool
    complete: bool


class ConstraintTracker:
    """One per loaded model: builds the llguidance tokenizer once (llguidance.hf.from_tokenizer, ~0.6 s).

    Matcher states are cached per (grammar, completion prefix) in a bounded LRU; a request for prefix + [t]
    copies the state of the longest cached prefix and consumes only the missing tokens. Cached matchers are
    never advanced in place, so every cached prefix stays valid for branching and rewinding. Thread-safe.
    """

    def __init__(self, tokenizer, vocab_size: int, capacity: int = STATE_CAPACITY) -> None:
        if vocab_size < 1:
            raise ValueError(f"vocab_size {vocab_size!r} must be a positive number of token ids")
        self._tokenizer = tokenizer
        try:
            self._ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer)
        except ValueError as exc:
            raise ValueError(
                f"grammar constraints need a fast (Rust) Hugging Face tokenizer; {type(tokenizer).__name__} is not"
                f" one ({exc})"
            ) from exc
        self.vocab_size = int(vocab_size)
        self._eos = frozenset(self._ll_tokenizer.eos_tokens)
        self._roots: BoundedCache[str, LLMatcher] = BoundedCache(max_entries=GRAMMAR_CAPACITY)
        self._states: BoundedCache[_StateKey, _State] = BoundedCache(max_entries=max(1, int(capacity)))
        self._bitmask = llg_numpy.allocate_token_bitmask(1, self._ll_tokenizer.vocab_size)
        self._counts: Counter[str] = Counter()
        # The caches lock themselves; this lock is for the work on their matchers, the shared bitmask and counts
        self._lock = threading.Lock()

    def stats(self) -> TrackerStats:
        with self._lock:
            states = self._states.stats()
            return TrackerStats(self._counts["compiled"], self._counts["consumed"], states.hits, states.entries)

    def mask(self, spec: ConstraintSpec, completion_ids: Sequence[int]) -> ConstraintMask:
        """The tokens allowed after `completion_ids`; a disabled spec allows every token."""
        if not spec.enabled:
            return ConstraintMask(torch.from_numpy(np.ones(self.vocab_size, dtype=np.bool_)), True, False, "none")
        grammar = grammar_for(spec)
        ids = self._checked_ids(completion_ids)
        with self._lock:
            state = self._state(grammar, ids, spec.type)
            if state.mask is None:
                state.mask = self._compute_mask(state.matcher, spec.type, ids)
            mask = state.mask
        # Callers get their own tensor, so an in-place edit cannot corrupt the cached mask.
        return ConstraintMask(torch.from_numpy(mask.valid.copy()), mask.accepting, mask.complete, spec.type)

    def check_forced(self, spec: ConstraintSpec, completion_ids: Sequence[int], new_ids: Sequence[int]) -> None:
        """ValueError naming the first of `new_ids` the constraint refuses after the ones before it; no change."""
        if not spec.enabled:
            return
        grammar = grammar_for(spec)
        ids = self._checked_ids(completion_ids)
        new = self._checked_ids(new_ids)
        with self._lock:
            matcher = self._state(grammar, ids, spec.type).matcher.deep_copy()
            for index, token in enumerate(new):
                if not self._allows(matcher, token):
                    raise ValueError(
                        f"forced token {index + 1} of {len(new)} ({self._text([token])!r}, id {token}) of"
                        f" {self._text(new)!r} is not allowed by the {TYPE_NAMES[spec.type]} constraint after"
                        f" {self._text(ids + new[:index])!r}; nothing was changed"
                    )
                matcher.consume_token(token)

    # -- states

    def _state(self, grammar: str, ids: tuple[int, ...], kind: str) -> _State:
        key = (grammar, ids)
        state = self._states.get(key)
        if state is not None:
            return state
        start, base = self._nearest(grammar, ids)
        matcher = base.matcher.deep_copy() if base is not None else self._root(grammar, kind).deep_copy()
        for index in range(start, len(ids)):
            known = base.mask if base is not None and index == start else None
            self._consume(matcher, ids, index, kind, known)
        state = _State(matcher)
        self._states.put(key, state)
        return state

    def _nearest(self, grammar: str, ids: tuple[int, ...]) -> tuple[int, _State | None]:
        """The longest cached prefix of `ids` for this grammar: (its length, its state), or (0, None)."""
        parent = self._states.peek((grammar, ids[:-1])) if ids else None
        if parent is not None:
            return len(ids) - 1, parent
        best: tuple[int, _State | None] = (0, None)
        for cached_grammar, prefix in self._states:
            if cached_grammar == grammar and best[0] <= len(prefix) < len(ids) and ids[: len(prefix)] == prefix:
                best = (len(prefix), self._states.peek((cached_grammar, prefix)))
        return best

    def _root(self, grammar: str, kind: str) -> LLMatcher:
        root = self._roots.get(grammar)
        if root is None:
            root = LLMatcher(self._ll_tokenizer, grammar, log_level=0)
            self._counts["compiled"] += 1
            if root.is_error():
                raise ValueError(matcher_error(kind, root.get_error(), "for this tokenizer"))
            self._roots.put(grammar, root)
        return root

    def _consume(self, matcher: LLMatcher, ids: tuple[int, ...], index: int, kind: str, known: _Mask | None) -> None:
        # Validate first: consuming a refused token leaves the matcher in a permanent error state. A mask already
        # computed for this state answers without asking llguidance again.
        token = ids[index]
        allowed = bool(known.valid[token]) if known is not None else self._allows(matcher, token)
        if not allowed:
            raise ValueError(
                f"completion token {index} ({self._text([token])!r}, id {token}) is not allowed by the"
                f" {TYPE_NAMES[kind]} constraint after {self._text(ids[:index])!r}"
            )
        matcher.consume_token(token)
        self._counts["consumed"] += 1
        if matcher.is_error():
            raise ValueError(matcher_error(kind, matcher.get_error(), f"at completion token {index}"))

    def _allows(self, matcher: LLMatcher, token: int) -> bool:
        # validate_tokens refuses EOS once the matcher has stopped, although EOS is in its mask then.
        if token in self._eos and matcher.is_accepting():
            return True
        return token < self._ll_tokenizer.vocab_size and matcher.validate_tokens([token]) == 1

    # -- masks

    def _compute_mask(self, matcher: LLMatcher, kind: str, ids: tuple[int, ...]) -> _Mask:
        llg_numpy.fill_next_token_bitmask(matcher, self._bitmask, 0)
        if matcher.is_error():
            raise ValueError(matcher_error(kind, matcher.get_error()))
        valid = self._unpack(self._bitmask[0])
        allowed = int(np.count_nonzero(valid))
        if allowed == 0:
            raise ValueError(
                f"the constraint allows no token here (after {self._text(ids)!r}): the {TYPE_NAMES[kind]} cannot be"
                " continued with this tokenizer's tokens"
            )
        accepting = matcher.is_accepting()
        eos_allowed = sum(bool(valid[t]) for t in self._eos if t < self.vocab_size)
        complete = accepting and (matcher.is_stopped() or allowed == eos_allowed)
        return _Mask(valid, accepting, complete)

    def _unpack(self, words: np.ndarray) -> np.ndarray:
        """Bit i of 32-bit word j is token 32*j + i; ids past the tokenizer's vocabulary stay False."""
        bits = np.unpackbits(words.astype("<i4", copy=False).view(np.uint8), bitorder="little").view(np.bool_)
        known = min(self.vocab_size, self._ll_tokenizer.vocab_size)
        valid = np.zeros(self.vocab_size, dtype=np.bool_)
        valid[:known] = bits[:known]
        return valid

    # -- helpers

    def _checked_ids(self, ids: Sequence[int]) -> tuple[int, ...]:
        out = tuple(int(i) for i in ids)
        if out and (min(out) < 0 or max(out) >= self.vocab_size):  # min/max keep the common case at C speed
            index, token = next((i, t) for i, t in enumerate(out) if not 0 <= t < self.vocab_size)
            raise ValueError(
                f"token id {token} at index {index} is outside the vocabulary: accepted is 0 to {self.vocab_size - 1}"
            )
        return out

    def _text(self, ids: Sequence[int], limit: int = 80) -> str:
        """Decoded text for messages; a long completion keeps only its end, where the problem is."""
        text = self._tokenizer.decode(list(ids[-limit:]), skip_special_tokens=False)
        return text if len(ids) <= limit else "…" + text


def tracker_for(loaded: LoadedModel) -> ConstraintTracker:
    """The tracker of the current model (`LoadedModel`), rebuilt when another model is loaded."""
    return per_model(loaded, "constraint tracker", lambda m: ConstraintTracker(m.tokenizer, m.vocab_size))
